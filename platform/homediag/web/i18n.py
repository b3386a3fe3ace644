"""Languages of the web app: Danish by default, English by choice.

The texts are English message ids in the templates (``{% trans %}``, ``_()``); the Danish catalogue is
``locale/da/LC_MESSAGES/messages.po``, read with Babel when the app starts and compiled in memory, so
that a fresh ``pip install -e .`` (or a wheel) has working catalogues without a build step. Dates and
numbers are formatted by Babel for the language's locale (``da_DK``: ``30.11.2026 08.15``, ``36,8``).
"""

from __future__ import annotations

import io
from datetime import date, datetime
from functools import cache
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
        return format_datetime(self.local(value), "short", tzinfo=self.zone, locale=self.locale)

    def date(self, value: date | datetime | None) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            value = self.local(value).date()
        return format_date(value, "short" if self.lang == "en" else "dd.MM.yyyy", locale=self.locale)

    def day(self, value: date) -> str:
        return format_date(value, "EEE d. MMM" if self.lang == "da" else "EEE d MMM", locale=self.locale)

    def time(self, value: datetime) -> str:
        return format_time(self.local(value), "short", tzinfo=self.zone, locale=self.locale)

    def number(self, value: Any, digits: int = 1) -> str:
        if value is None:
            return ""
        return format_decimal(value, format=f"#,##0.{'#' * digits}" if digits else "#,##0", locale=self.locale)

    def plain(self, value: Any) -> str:
        """A number for an input field: no thousands separator (it would read as a decimal point)."""
        return "" if value is None else format_decimal(value, format="0.###", locale=self.locale)

    def percent(self, value: float) -> str:
        return format_percent(value, locale=self.locale)
