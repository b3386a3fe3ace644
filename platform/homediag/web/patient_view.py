"""What the patient page template gets: charts and tables per measurement, the adherence calendar, the
refused uploads explained, the consents."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

from fastapi import Request
from markupsafe import Markup

from homediag.access.patient_page import PatientPage
from homediag.access.readings import Reading
from homediag.bounded import Bounded
from homediag.runtime import Runtime

from . import charts, drawn, predraw, reasons
from .i18n import N_, UNIT_NAMES, Formats, translations
from .render import environment, language

PERIODS = (14, 30, 90)
# The order measurements are shown in, and their components' names.
ORDER = ("blood-pressure", "pulse-rate", "spo2", "body-temperature", "body-weight")
COMPONENT_NAMES = {
    "systolic": N_("Systolic"),
    "diastolic": N_("Diastolic"),
    "mean-arterial-pressure": N_("Mean"),
}
FLAG_NAMES = {
    "body-movement": N_("Body movement"),
    "cuff-too-loose": N_("Cuff fit"),
    "irregular-pulse": N_("Irregular pulse"),
    "pulse-rate-exceeds-upper-limit": N_("Pulse above the device's range"),
    "pulse-rate-less-than-lower-limit": N_("Pulse below the device's range"),
    "improper-body-position": N_("Body position"),
    "clock-not-set": N_("Clock not set"),
}
SHOWN_COMPONENTS = ("systolic", "diastolic")  # a blood-pressure chart draws these; the table shows all


@dataclass
class MeasurementBlock:
    key: str
    text: str
    unit: str
    readings: list[Reading]
    svg: str
    rows: list[Markup] = field(default_factory=list)  # the table's rows, newest first (``_table_rows``)


# A table row by everything it shows (``_patient_row.html``): a page of 90 days renders hundreds, the same ones
# view after view; no session data is in a row (its button submits the table's form, which carries the token).
_ROWS: Bounded[tuple[Any, ...], Markup] = Bounded(50_000)


def _table_rows(
    readings: list[Reading], form_id: str, lang: str, fmt: Formats, kept: drawn.KeptCharts | None = None
) -> list[Markup]:
    """The table's rows, newest first: remembered in process per row, else the block's rows as rendered before
    (kept in the store with the drawn charts, by the SHA-256 of every row's key: a freshly started process does not
    render them again), else rendered (and kept)."""
    keys = [
        (
            lang,
            fmt.zone.key,
            form_id,
            r.id,
            r.triage,
            r.acknowledged,
            tuple(r.reasons),
            tuple(flags_of(r)),
            r.device,
            r.gateway,
        )
        for r in reversed(readings)
    ]
    found = [_ROWS.get(key) for key in keys]
    if all(row is not None for row in found):
        return found  # type: ignore[return-value]
    stored = drawn.chart_key(("table rows", _rendering(lang), *keys)) if kept is not None else ""
    text = kept.get(stored) if kept is not None else None
    if text is not None:
        rows = [Markup(row) for row in json.loads(text)]
        for key, row in zip(keys, rows, strict=True):
            _ROWS.remember(key, row)
        return rows
    macro = environment(lang).get_template("_patient_row.html").module.row  # type: ignore[attr-defined]
    plain = translations(lang).gettext  # no %-formatting: a unit may be "%"

    def unit(text: str) -> str:
        return plain(text) if text in UNIT_NAMES else text

    def reason(text: str) -> str:
        return reasons.triage_reason(text, plain, fmt.number)  # monitoring's reasons, translated

    out = []
    for key, r, known in zip(keys, reversed(readings), found, strict=True):
        rendered = (
            known
            if known is not None
            else Markup(macro(r, form_id, fmt, unit, value_text, flags_of, FLAG_NAMES, reason))
        )
        out.append(_ROWS.remember(key, rendered) if known is None else rendered)
    if kept is not None:
        kept.put(stored, json.dumps([str(row) for row in out]))
    return out


@functools.cache
def _rendering(lang: str) -> str:
    """The SHA-256 of what renders a row besides its key (the row's templates and ``lang``'s catalogue): a kept
    row rendered by other templates or texts is not used."""
    package = resources.files("homediag.web")
    digest = hashlib.sha256()
    for name in ("_patient_row.html", "_macros.html"):
        digest.update(package.joinpath("templates", name).read_bytes())
    catalogue = package.joinpath("locale", lang, "LC_MESSAGES", "messages.po")
    digest.update(catalogue.read_bytes() if catalogue.is_file() else lang.encode())
    return digest.hexdigest()


def value_text(reading: Reading, fmt: Formats) -> str:
    if reading.measurement == "blood-pressure":
        sys_, dia = reading.values.get("systolic"), reading.values.get("diastolic")
        return f"{fmt.number(sys_, 0)}/{fmt.number(dia, 0)}"
    return " / ".join(fmt.number(v) for v in reading.values.values())


def flags_of(reading: Reading) -> list[str]:
    return [*reading.flags, *(["clock-not-set"] if reading.clock_not_set else [])]


def patient_context(
    page: PatientPage, request: Request, chosen: int | None, first: date, last: date, rt: Runtime
) -> dict[str, Any]:
    lang = language(request)
    by_measurement: dict[str, list[Reading]] = {}
    for reading in page.readings:
        by_measurement.setdefault(reading.measurement, []).append(reading)
    if page.patient_key is not None:
        predraw.wait(rt, page.patient_key)  # its charts being drawn ahead now: found drawn, not drawn twice
    kept = drawn.KeptCharts(rt)
    try:
        wanted = [(n, key, by_measurement[key]) for n, key in enumerate(ordered(by_measurement))]
        blocks = measurement_blocks(wanted, page.bands, lang, first, last, page.start, page.end, rt, kept)
    finally:
        kept.close()
    if page.patient_key is not None:
        predraw.shown(
            rt, page.patient_key, lang, chosen, (first, last, page.start, page.end), by_measurement, page.bands
        )
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    uploads = [(u, reasons.explain(u.outcome, u.issues)) for u in page.uploads]
    return {
        "page": page,
        "blocks": blocks,
        "periods": PERIODS,
        "chosen": chosen,
        "first": first,
        "last": last,
        "calendar": _calendar(days, page.days_measured),
        "days_measured": sum(1 for d in days if d in page.days_measured),
        "period_days": len(days),
        "uploads": uploads,
        "value_text": value_text,
        "flags_of": flags_of,
        "flag_names": FLAG_NAMES,
        "component_names": COMPONENT_NAMES,
    }


def ordered(by_measurement: dict[str, list[Reading]]) -> list[str]:
    """The measurements of a page in the order its blocks are shown."""
    return sorted(by_measurement, key=lambda k: (ORDER.index(k) if k in ORDER else len(ORDER), k))


def measurement_blocks(
    wanted: list[tuple[int, str, list[Reading]]],
    page_bands: list[Any],
    lang: str,
    first: date,
    last: date,
    start: datetime,
    end: datetime,
    rt: Runtime,
    kept: drawn.KeptCharts,
) -> list[MeasurementBlock]:
    """The blocks ``wanted`` (each the ``n``-th block of a page: measurement ``key``'s ``readings`` of [start,
    end), the days ``first`` to ``last``), their charts and tables drawn (or found drawn) and rendered in ``lang``;
    every chart is started first (drawn side by side in the drawing processes), the tables rendered meanwhile
    (``web.predraw`` makes the blocks of a page shown before with its new readings the same way)."""
    started = [
        (key, readings, _chart(n, key, readings, page_bands, lang, first, last, start, end, rt, kept))
        for n, key, readings in wanted
    ]
    fmt = Formats(lang, rt.local_zone)
    blocks = []
    for key, readings, (text, unit, _svg) in started:
        rows = _table_rows(readings, f"ack-{key}", lang, fmt, kept)
        blocks.append(MeasurementBlock(key, text, unit, readings, "", rows))
    for block, (_key, _readings, (_text, _unit, svg)) in zip(blocks, started, strict=True):
        block.svg = svg()
    return blocks


def _chart(
    n: int,
    key: str,
    readings: list[Reading],
    page_bands: list[Any],
    lang: str,
    first: date,
    last: date,
    start: datetime,
    end: datetime,
    rt: Runtime,
    kept: drawn.KeptCharts,
) -> tuple[str, str, Callable[[], str]]:
    """The measurement's name and unit in ``lang``, and its chart (``charts.chart``: started, had by calling)."""
    _ = translations(lang).gettext
    fmt = Formats(lang, rt.local_zone)
    text = _(readings[0].text)
    unit = _(readings[0].unit) if readings[0].unit in UNIT_NAMES else readings[0].unit
    components = [c for c in SHOWN_COMPONENTS if any(c in r.values for r in readings)] or list(readings[0].values)
    series = [
        charts.Series(
            component,
            _(COMPONENT_NAMES.get(component, readings[0].text)),
            [_point(r, component, lang, _, fmt) for r in readings if component in r.values],
        )
        for component in components
    ]
    mine = [b for b in page_bands if b.component in components]
    bands = [charts.Band(b.low, b.high, b.colour, b.colour) for b in mine] if len(components) == 1 else []
    lines = _lines(mine) if len(components) > 1 else []
    title = _("%(measurement)s, %(start)s to %(end)s") % {
        "measurement": text,
        "start": fmt.date(first),
        "end": fmt.date(last),
    }
    svg = charts.chart(
        f"chart{n}",
        title,
        unit,
        series,
        bands,
        lines,
        start,
        end,
        rt.local_zone,
        decimal_comma=lang == "da",
        kept=kept,
    )
    return text, unit, svg


def _lines(bands: list[Any]) -> list[charts.Line]:
    """Every threshold as a line: at each edge between two bands, in the colour of the band away from green."""
    out = []
    for b in bands:
        if b.low is None:
            continue
        below = next((x for x in bands if x.component == b.component and x.high == b.low), None)
        colour = b.colour if b.colour != "green" else (below.colour if below is not None else "yellow")
        out.append(charts.Line(b.low, colour, b.component))
    return out


def _unit(text: str, _: Any) -> str:
    return str(_(text)) if text in UNIT_NAMES else text


# A chart's point by everything it shows (``_point_title``'s inputs, the colour): a page of 90 days has hundreds, the
# same ones view after view, and a page drawn ahead after ingest (``web.predraw``) all of them but the new one. A
# stored reading never changes (its values, device time, measurement and unit are its id's, a content hash); what a
# page adds to it (the triage, the device's and gateway's names, the flags of status observations about it) and its
# arrival are in the key.
_POINTS: Bounded[tuple[Any, ...], charts.Point] = Bounded(50_000)


def _point(reading: Reading, component: str, lang: str, _: Any, fmt: Formats) -> charts.Point:
    key = (
        lang,
        fmt.zone.key,
        reading.id,
        component,
        reading.triage,
        reading.device,
        reading.gateway,
        tuple(reading.flags),
        reading.received_at,
    )
    found = _POINTS.get(key)
    if found is None:
        title = _point_title(reading, component, _, fmt)
        found = _POINTS.remember(
            key, charts.Point(reading.effective, reading.values[component], reading.triage, title, reading.id)
        )
    return found


def _point_title(reading: Reading, component: str, _: Any, fmt: Formats) -> str:
    parts = [
        f"{_(COMPONENT_NAMES.get(component, reading.text))} {fmt.number(reading.values[component])}"
        f" {_unit(reading.unit, _)}",
        _("device time %(time)s") % {"time": fmt.datetime(reading.effective)},
        reading.device,
        _("gateway %(gateway)s") % {"gateway": reading.gateway},
        _("arrived %(time)s") % {"time": fmt.datetime(reading.received_at)},
    ]
    flags = [_(FLAG_NAMES.get(f, f)) for f in flags_of(reading)]
    if flags:
        parts.append(", ".join(flags))
    return " · ".join(p for p in parts if p)


def _calendar(days: list[date], measured: set[date]) -> list[list[tuple[date, bool] | None]]:
    """Weeks (Monday first) of (day, measured); None pads the first and last week."""
    if not days:
        return []
    weeks: list[list[tuple[date, bool] | None]] = []
    week: list[tuple[date, bool] | None] = [None] * days[0].weekday()
    for day in days:
        week.append((day, day in measured))
        if len(week) == 7:
            weeks.append(week)
            week = []
    if week:
        weeks.append(week + [None] * (7 - len(week)))
    return weeks
