"""Triage rules: a reading's colour against a patient's thresholds. Pure: no database, no web.

A *measure* is what a threshold is about (``systolic``, ``diastolic``, ``pulse``, ``spo2``, ``temperature``,
``weight``, ``glucose``); ``measures_of`` finds them in a stored FHIR Observation (a blood-pressure Observation
has two, its components). ``Limits`` hold up to four limits in the measure's unit; a value *at or above* a high
limit, or *below* a low limit, crosses it (so ESH's "home BP >= 135/85 is high" is ``yellow_high = 135``). The
worst limit crossed decides: red (``red_low``/``red_high``) over yellow over green. Weight also has a change
rule (heart failure: a gain of ``kg`` within ``days``), which needs the patient's earlier weights.

Colours, worst first: red, yellow, blue (measurements missing against the plan; a patient's colour, never a
reading's), green.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

MDC = "urn:iso:std:iso:11073:10101"

# MDC code -> measure. Pulse comes from cuffs, oximeters and ECG; glucose from every glucometer sample type
# (not the control solution, which is no patient's reading).
MEASURE_OF_CODE: dict[str, str] = {
    "150021": "systolic",
    "150022": "diastolic",
    "149546": "pulse",
    "149530": "pulse",
    "147842": "pulse",
    "150456": "spo2",
    "150364": "temperature",
    "188736": "weight",
    **dict.fromkeys(("160184", "160188", "160192", "160196", "160200", "160204", "160364", "160368"), "glucose"),
}
# The unit (UCUM) each measure's limits are in; a value in another unit is not triaged.
UNITS: dict[str, str] = {
    "systolic": "mm[Hg]",
    "diastolic": "mm[Hg]",
    "pulse": "/min",
    "spo2": "%",
    "temperature": "Cel",
    "weight": "kg",
    "glucose": "mmol/L",
}
MEASURES: tuple[str, ...] = tuple(UNITS)


class Colour(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    BLUE = "blue"
    GREEN = "green"

    @property
    def severity(self) -> int:
        """3 red, 2 yellow, 1 blue, 0 green: sort a worklist by it, descending."""
        return _SEVERITY[self]


_SEVERITY = {Colour.RED: 3, Colour.YELLOW: 2, Colour.BLUE: 1, Colour.GREEN: 0}


def worst(colours: Iterable[Colour]) -> Colour:
    """The most severe colour; green when there is none."""
    return max(colours, key=_SEVERITY.__getitem__, default=Colour.GREEN)


class Direction(StrEnum):
    """Which way a value left its range: the v3 ObservationInterpretation codes L, H, LL, HH, U (change up)."""

    LOW = "L"
    HIGH = "H"
    CRITICAL_LOW = "LL"
    CRITICAL_HIGH = "HH"
    CHANGE_UP = "U"
    NORMAL = "N"


@dataclass(frozen=True)
class Limits:
    """The limits of one measure, in ``UNITS[measure]``; None: no such limit."""

    red_low: float | None = None
    yellow_low: float | None = None
    yellow_high: float | None = None
    red_high: float | None = None

    def check(self) -> str | None:
        """What is inconsistent about these limits (None: nothing): they must not cross."""
        order = [("red_low", self.red_low), ("yellow_low", self.yellow_low)]
        order += [("yellow_high", self.yellow_high), ("red_high", self.red_high)]
        given = [(n, v) for n, v in order if v is not None]
        for (n1, v1), (n2, v2) in zip(given, given[1:], strict=False):
            if v1 > v2:
                return f"{n1} ({v1:g}) must not be above {n2} ({v2:g})"
        if self.yellow_low is not None and self.yellow_high is not None and self.yellow_low == self.yellow_high:
            return "yellow_low and yellow_high are equal: no value would be green"
        return None


@dataclass(frozen=True)
class WeightChange:
    """Heart failure: a weight gain of ``kg`` or more within ``days`` (against the lowest weight of the days
    before) is yellow; of ``red_kg`` or more, red."""

    kg: float = 2.0
    days: int = 3
    red_kg: float | None = None

    def check(self) -> str | None:
        if self.kg <= 0:
            return f"kg must be above 0 (got {self.kg:g})"
        if not 1 <= self.days <= 60:
            return f"days must be between 1 and 60 (got {self.days})"
        if self.red_kg is not None and self.red_kg < self.kg:
            return f"red_kg ({self.red_kg:g}) must not be below kg ({self.kg:g})"
        return None


@dataclass(frozen=True)
class Thresholds:
    """A patient's thresholds: limits per measure, and the weight-change rule. A measure without limits is
    not triaged (its readings are shown without a colour)."""

    limits: Mapping[str, Limits] = field(default_factory=dict)
    weight_change: WeightChange | None = None


@dataclass(frozen=True)
class Value:
    """One measured value of a reading: the measure, the number, its UCUM unit and where it sits in the
    Observation (``component`` index, or None for ``valueQuantity``)."""

    measure: str
    value: float
    unit: str | None
    component: int | None = None


@dataclass(frozen=True)
class Verdict:
    """The triage of one value: colour, v3 interpretation, and the reason in words (None for green)."""

    measure: str
    colour: Colour
    direction: Direction
    reason: str | None = None
    component: int | None = None


@dataclass(frozen=True)
class Triage:
    """A reading's triage: the worst of its values' verdicts. ``verdicts`` is empty when nothing in the
    reading has thresholds (colour green, ``triaged`` False)."""

    colour: Colour
    verdicts: tuple[Verdict, ...]

    @property
    def triaged(self) -> bool:
        return bool(self.verdicts)

    @property
    def reasons(self) -> list[str]:
        return [v.reason for v in self.verdicts if v.reason]


def _coded_measure(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == MDC and coding.get("code") in MEASURE_OF_CODE:
            return MEASURE_OF_CODE[str(coding["code"])]
    return None


def _quantity(q: Any) -> tuple[float, str | None] | None:
    value = q.get("value") if isinstance(q, dict) else None
    if not isinstance(value, int | float | Decimal) or isinstance(value, bool) or not math.isfinite(value):
        return None
    unit = q.get("code") if isinstance(q.get("code"), str) else None
    return float(q["value"]), unit


def measures_of(resource: Mapping[str, Any]) -> list[Value]:
    """The measured values of a stored Observation that thresholds can be about (none for others)."""
    out: list[Value] = []
    measure = _coded_measure(resource.get("code"))
    found = _quantity(resource.get("valueQuantity"))
    if measure is not None and found is not None:
        out.append(Value(measure, found[0], found[1]))
    for index, component in enumerate(resource.get("component") or []):
        if not isinstance(component, dict):
            continue
        cmeasure = _coded_measure(component.get("code"))
        cfound = _quantity(component.get("valueQuantity"))
        if cmeasure is not None and cfound is not None:
            out.append(Value(cmeasure, cfound[0], cfound[1], index))
    return out


def effective_time(resource: Mapping[str, Any]) -> datetime | None:
    """The Observation's effective time (dateTime, or a period's start), aware; None when it has none."""
    text = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start")
    if not isinstance(text, str) or "T" not in text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _fmt(x: float) -> str:
    return f"{x:g}"


def triage_value(value: Value, limits: Limits) -> Verdict:
    """A value against its measure's limits. High limits are crossed at or above, low limits below."""
    v, unit = value.value, UNITS.get(value.measure, "")
    checks = [
        (limits.red_high, lambda lim: v >= lim, Colour.RED, Direction.CRITICAL_HIGH, "≥"),
        (limits.red_low, lambda lim: v < lim, Colour.RED, Direction.CRITICAL_LOW, "<"),
        (limits.yellow_high, lambda lim: v >= lim, Colour.YELLOW, Direction.HIGH, "≥"),
        (limits.yellow_low, lambda lim: v < lim, Colour.YELLOW, Direction.LOW, "<"),
    ]
    for limit, crossed, colour, direction, sign in checks:
        if limit is not None and crossed(limit):
            reason = f"{value.measure} {_fmt(v)} {unit} {sign} {_fmt(limit)} ({colour.value})"
            return Verdict(value.measure, colour, direction, reason, value.component)
    return Verdict(value.measure, Colour.GREEN, Direction.NORMAL, None, value.component)


def triage_weight_change(
    weight: float, at: datetime, earlier: Iterable[tuple[datetime, float]], rule: WeightChange
) -> Verdict | None:
    """A weight against the lowest weight of the ``rule.days`` before ``at`` (None: no earlier weight then)."""
    since = at - timedelta(days=rule.days)
    window = [w for t, w in earlier if since <= t < at]
    if not window:
        return None
    gain = weight - min(window)
    # rounding: 2.0 kg measured as 81.3 - 79.3 must count as 2.0
    gain = round(gain, 6)
    if rule.red_kg is not None and gain >= rule.red_kg:
        colour = Colour.RED
    elif gain >= rule.kg:
        colour = Colour.YELLOW
    else:
        return Verdict("weight", Colour.GREEN, Direction.NORMAL)
    reason = f"weight +{_fmt(gain)} kg within {rule.days} days ({colour.value})"
    return Verdict("weight", colour, Direction.CHANGE_UP, reason)


def triage(
    reading: Mapping[str, Any] | tuple[str, float] | Iterable[Value],
    thresholds: Thresholds,
    *,
    earlier_weights: Iterable[tuple[datetime, float]] = (),
    at: datetime | None = None,
) -> Triage:
    """The triage of one reading: a stored FHIR Observation, a ``(measure, value)`` pair, or its ``Value``s.

    ``earlier_weights`` ((time, kg) of the patient's earlier weights) feed the weight-change rule, for a reading
    taken ``at`` (default: an Observation's effective time). A value in a unit other than its measure's is not
    triaged (no colour claimed from a unit mix-up)."""
    if isinstance(reading, Mapping):
        values = measures_of(reading)
        at = at or effective_time(reading)
    elif isinstance(reading, tuple) and len(reading) == 2 and isinstance(reading[0], str):
        measure, number = reading
        values = [Value(measure, float(number), UNITS.get(measure))]
    else:
        values = list(reading)  # type: ignore[arg-type]
    verdicts: list[Verdict] = []
    for value in values:
        if value.unit is not None and value.unit != UNITS.get(value.measure):
            continue
        limits = thresholds.limits.get(value.measure)
        found: list[Verdict] = []
        if limits is not None:
            found.append(triage_value(value, limits))
        if value.measure == "weight" and thresholds.weight_change is not None and at is not None:
            change = triage_weight_change(value.value, at, earlier_weights, thresholds.weight_change)
            if change is not None:
                found.append(Verdict(change.measure, change.colour, change.direction, change.reason, value.component))
        if found:
            verdicts.append(max(found, key=lambda v: v.colour.severity))
    return Triage(worst(v.colour for v in verdicts), tuple(verdicts))
