"""The Danish catalogue covers every text of the web app, and is read from the installed package."""

from __future__ import annotations

from importlib import resources

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from homediag.fhir_profiles import terminology
from homediag.web.i18n import Formats, translations

WEB = resources.files("homediag.web")


def _danish() -> dict[object, object]:
    with WEB.joinpath("locale", "da", "LC_MESSAGES", "messages.po").open("rb") as fp:
        return {m.id: m.string for m in read_po(fp) if m.id}


def test_every_text_of_the_templates_and_modules_has_a_danish_translation() -> None:
    danish = _danish()
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}}
    found = [
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(WEB), method_map=[("templates/**.html", "jinja2"), ("**.py", "python")], options_map=options
        )
    ]
    assert len(found) > 100
    missing = [m for m in found if not danish.get(m if isinstance(m, str) else tuple(m))]
    assert missing == []


def test_every_measurement_and_patient_group_a_page_shows_has_a_danish_name() -> None:
    danish = _danish()
    shown = [m.text for m in terminology.MEASUREMENTS.values() if m.kind in ("panel", "quantity")]
    assert [t for t in shown if not danish.get(t)] == []
    from homediag.monitoring import default_groups

    assert [g.title for g in default_groups().values() if not danish.get(g.title)] == []
    assert translations("da").gettext("Blood pressure") == "Blodtryk"
    assert translations("en").gettext("Blood pressure") == "Blood pressure"


def test_danish_dates_and_numbers() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    fmt = Formats("da", ZoneInfo("Europe/Copenhagen"))
    assert fmt.number(36.8) == "36,8"
    assert fmt.number(1234.5) == "1.234,5"
    assert fmt.date(datetime(2026, 11, 30, 23, 30, tzinfo=UTC)) == "01.12.2026"  # midnight passed in Copenhagen
    assert fmt.datetime(datetime(2026, 11, 30, 7, 15, tzinfo=UTC)) == "30.11.2026 08.15"
    assert Formats("en", ZoneInfo("Europe/Copenhagen")).number(36.8) == "36.8"
    assert fmt.plain(1234.5) == "1234,5"  # an input field's value: no thousands separator
