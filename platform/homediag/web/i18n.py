"""Languages of the web app: Danish by default, English by choice.

The texts are English message ids in the templates (``{% trans %}``, ``_()``); the Danish catalogue is
``locale/da/LC_MESSAGES/messages.po``, read with Babel when the app starts and compiled in memory, so
that a fresh ``pip install -e .`` (or a wheel) has working catalogues without a build step. Dates and
numbers are formatted by Babel for the language's locale (``da_DK``: ``30.11.2026 08.15``, ``36,8``).
"""

from __future__ import annotations

import io
from datetime import date, datetime
from functools import cache, lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations

LANGUAGES = ("da", "en")
DEFAULT = "da"
LOCALES = {"da": "da_DK", "en": "en_GB"}
LANG_COOKIE = "hd_lang"


def N_(text: str) -> str:  # noqa: N802 - the gettext convention: marks a text for the catalogue, translated later
    return text


UNIT_NAMES = (N_("beats/minute"), N_("breaths/minute"))  # unit displays that read differently in Danish


@cache
def translations(lang: str) -> NullTranslations:
    """The catalogue of ``lang`` (English: the message ids themselves)."""
    if lang == "en":
        return NullTranslations()
    source = resources.files("homediag.web").joinpath("locale", lang, "LC_MESSAGES", "messages.po")
    with source.open("rb") as fp:
        catalog = read_po(fp, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain="messages")


def language_of(cookie: str | None) -> str:
    return cookie if cookie in LANGUAGES else DEFAULT


# Babel's formatting costs tens of microseconds a call and a page formats thousands of instants and values (every
# point's tooltip, every table row); the same ones again on the next view. Remembered per locale and zone.
@lru_cache(maxsize=100_000)
def _datetime(locale: str, zone: ZoneInfo, value: datetime) -> str:
    return format_datetime(value.astimezone(zone), "short", tzinfo=zone, locale=locale)


@lru_cache(maxsize=20_000)
def _date(locale: str, pattern: str, value: date) -> str:
    return format_date(value, pattern, locale=locale)


@lru_cache(maxsize=100_000)
def _decimal(locale: str, pattern: str, kind: type, value: Any) -> str:
    return format_decimal(value, format=pattern, locale=locale)


class Formats:
    """Dates, times and numbers the way ``lang`` writes them, in the hospital's time zone."""

    def __init__(self, lang: str, zone: ZoneInfo) -> None:
        self.lang = lang
        self.locale = Locale.parse(LOCALES[lang])
        self.zone = zone

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.zone)

    def datetime(self, value: datetime | None) -> str:
        if value is None:
            return ""
        return _datetime(LOCALES[self.lang], self.zone, value)

    def date(self, value: date | datetime | None) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            value = self.local(value).date()
        return _date(LOCALES[self.lang], "short" if self.lang == "en" else "dd.MM.yyyy", value)

    def day(self, value: date) -> str:
        return format_date(value, "EEE d. MMM" if self.lang == "da" else "EEE d MMM", locale=self.locale)

    def time(self, value: datetime) -> str:
        return format_time(self.local(value), "short", tzinfo=self.zone, locale=self.locale)

    def number(self, value: Any, digits: int = 1) -> str:
        if value is None:
            return ""
        return _decimal(LOCALES[self.lang], f"#,##0.{'#' * digits}" if digits else "#,##0", type(value), value)

    def plain(self, value: Any) -> str:
        """A number for an input field: no thousands separator (it would read as a decimal point)."""
        return "" if value is None else format_decimal(value, format="0.###", locale=self.locale)

    def percent(self, value: float) -> str:
        return format_percent(value, locale=self.locale)
