"""The period report: a one-page summary of a patient's period, printable, with a paste-ready text for the
electronic record. Built from the patient page's read (decided and audited there): counts, averages and
ranges per measurement, readings per triage colour, adherence, and whether there was enough data to judge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from statistics import fmean
from typing import Any

from homediag.access.patient_page import PatientPage
from homediag.access.readings import Reading

from .i18n import N_, UNIT_NAMES, Formats

# Enough data to judge a measurement: the ESH home blood pressure protocol asks for at least 12 readings over
# several days; the same minimum (12 readings on at least 6 days) is used for every measurement here.
MIN_READINGS = 12
MIN_DAYS = 6
COLOURS = ("red", "yellow", "green")


@dataclass
class Summary:
    key: str
    text: str
    unit: str
    count: int
    days: int
    values: list[tuple[str, float, float, float]]  # (component, mean, min, max)
    colours: dict[str, int]
    enough: bool


def summarise(page: PatientPage, gettext: Any) -> list[Summary]:
    by: dict[str, list[Reading]] = {}
    for r in page.readings:
        by.setdefault(r.measurement, []).append(r)
    out: list[Summary] = []
    for key, readings in by.items():
        components = list(dict.fromkeys(c for r in readings for c in r.values))
        values = []
        for c in components:
            numbers = [r.values[c] for r in readings if c in r.values]
            values.append((c, fmean(numbers), min(numbers), max(numbers)))
        days = len({r.effective.date() for r in readings})
        unit = readings[0].unit
        out.append(
            Summary(
                key,
                gettext(readings[0].text),
                gettext(unit) if unit in UNIT_NAMES else unit,
                len(readings),
                days,
                values,
                {c: sum(1 for r in readings if r.triage == c) for c in COLOURS},
                len(readings) >= MIN_READINGS and days >= MIN_DAYS,
            )
        )
    from .patient_view import ORDER

    return sorted(out, key=lambda s: (ORDER.index(s.key) if s.key in ORDER else len(ORDER), s.key))


COMPONENT_TEXT = {"systolic": N_("systolic"), "diastolic": N_("diastolic"), "mean-arterial-pressure": N_("mean")}


def paste_text(
    page: PatientPage, summaries: list[Summary], first: date, last: date, fmt: Formats, gettext: Any, days_measured: int
) -> str:
    """The report as plain text for the electronic record."""
    _ = gettext
    lines = [
        _("Home monitoring %(start)s to %(end)s") % {"start": fmt.date(first), "end": fmt.date(last)},
        _("Measured on %(measured)d of %(days)d days.") % {"measured": days_measured, "days": (last - first).days + 1},
    ]
    if page.assessment is not None:
        lines.append(_("Triage of the period") + ": " + _(page.assessment.colour.capitalize()))
    for s in summaries:
        parts = [
            _("%(component)s mean %(mean)s (%(low)s-%(high)s)")
            % {
                "component": _(COMPONENT_TEXT.get(c, s.text)),
                "mean": fmt.number(mean, 0 if mean >= 20 else 1),
                "low": fmt.number(low),
                "high": fmt.number(high),
            }
            for c, mean, low, high in s.values
        ]
        colours = ", ".join(f"{s.colours[c]} {_(c.capitalize()).lower()}" for c in COLOURS if s.colours[c])
        judged = "" if s.enough else " " + _("(too few readings to judge)")
        head = _("%(measurement)s: %(count)d readings") % {"measurement": s.text, "count": s.count}
        lines.append(f"{head}, " + "; ".join(parts) + f" {s.unit}" + (f"; {colours}" if colours else "") + judged)
    return "\n".join(lines)
