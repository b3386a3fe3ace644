"""What the worklist template gets: the access layer's worklist plus the filter state, and each row's cells but
the patient's name and date of birth already rendered (``_worklist_row.html``), remembered by what they show.

A worklist of 500 rows re-renders the same cells view after view (a row changes when its patient's data does);
rendering them costs more than the rest of the page. The remembered cells hold no identity: the name and date
of birth are rendered each view, from the vault read of that view. Keyed by everything the cells show (the
language, the measurement columns, the ids of the latest readings, which never change, the days measured, the
assessment, the last review), so a changed row is another key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from homediag.access.worklist import COLOURS, Worklist, WorklistRow
from homediag.bounded import Bounded

from .i18n import UNIT_NAMES, Formats, translations
from .render import environment

_CELLS: Bounded[tuple[Any, ...], tuple[Markup, Markup]] = Bounded(20_000)


def worklist_context(
    found: Worklist, team: str | None, colour: str | None, measurement: str | None, lang: str, fmt: Formats
) -> dict[str, Any]:
    return {
        "worklist": found,
        "cells": [_cells(row, found, lang, fmt) for row in found.rows],
        "colours": COLOURS,
        "selected": {"team": team or "", "colour": colour or "", "measurement": measurement or ""},
        "page_links": page_links(found, team, colour, measurement),
    }


def page_links(found: Worklist, team: str | None, colour: str | None, measurement: str | None) -> list[tuple[int, str]]:
    """(page number, its address with the filters kept) of every page, when there is more than one."""
    if found.pages <= 1:
        return []
    kept = {k: v for k, v in (("team", team), ("colour", colour), ("measurement", measurement)) if v}
    return [(n, "/app/worklist?" + urlencode({**kept, "page": n})) for n in range(1, found.pages + 1)]


def _cells(row: WorklistRow, found: Worklist, lang: str, fmt: Formats) -> tuple[Markup, Markup]:
    """(the triage cell, the cells after the date of birth) of a row."""
    a = row.assessment
    key = (
        lang,
        fmt.zone.key,
        tuple(found.measurements),
        found.adherence_days,
        row.triage,
        tuple((k, r.id) for k, r in row.latest.items()),
        row.days_measured,
        (a.unacknowledged, a.plan_ratio) if a is not None else None,
        row.last_reviewed,
    )
    cells = _CELLS.get(key)
    if cells is None:
        macros = environment(lang).get_template("_worklist_row.html").module
        plain = translations(lang).gettext  # no %-formatting: a unit may be "%"

        def unit(text: str) -> str:
            return plain(text) if text in UNIT_NAMES else text

        cells = (
            Markup(macros.head(row)),  # type: ignore[attr-defined]
            Markup(macros.tail(row, found.measurements, found.adherence_days, fmt, unit)),  # type: ignore[attr-defined]
        )
        _CELLS.remember(key, cells)
    return cells
