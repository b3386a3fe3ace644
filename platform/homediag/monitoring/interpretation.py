"""A reading's triage written into its Observation: ``interpretation`` and ``referenceRange``. Pure.

``interpretation`` carries two concepts: the HL7 v3 ObservationInterpretation code (N, H, L, HH, LL; U for a
significant gain, the heart-failure weight rule) and the triage colour in the platform's own code system
(``TRIAGE_SYSTEM``: red, yellow, green). A blood-pressure Observation gets them on each component too, and the
worst at the top. ``referenceRange`` is the green range of the thresholds in force at the reading's time (low:
the yellow low limit, high: the yellow high limit, which already counts as high), its ``text`` naming the
version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .triage import UNITS, Colour, Direction, Thresholds, Triage, Verdict

V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
TRIAGE_SYSTEM = "https://homediag.example.org/fhir/CodeSystem/triage-colour"
_DISPLAY = {
    Direction.NORMAL: "Normal",
    Direction.HIGH: "High",
    Direction.LOW: "Low",
    Direction.CRITICAL_HIGH: "Critical high",
    Direction.CRITICAL_LOW: "Critical low",
    Direction.CHANGE_UP: "Significant change up",
}
_UNIT_DISPLAY = {"mm[Hg]": "mmHg", "/min": "/min", "%": "%", "Cel": "°C", "kg": "kg", "mmol/L": "mmol/L"}


def _concepts(verdict_colour: Colour, direction: Direction) -> list[dict[str, Any]]:
    return [
        {"coding": [{"system": V3_INTERPRETATION, "code": direction.value, "display": _DISPLAY[direction]}]},
        {
            "coding": [{"system": TRIAGE_SYSTEM, "code": verdict_colour.value}],
            "text": f"triage: {verdict_colour.value}",
        },
    ]


def _quantity(value: float, measure: str) -> dict[str, Any]:
    unit = UNITS[measure]
    return {"value": value, "unit": _UNIT_DISPLAY.get(unit, unit), "system": "http://unitsofmeasure.org", "code": unit}


def reference_range(measure: str, thresholds: Thresholds, label: str) -> list[dict[str, Any]]:
    limits = thresholds.limits.get(measure)
    if limits is None or (limits.yellow_low is None and limits.yellow_high is None):
        return []
    rng: dict[str, Any] = {}
    if limits.yellow_low is not None:
        rng["low"] = _quantity(limits.yellow_low, measure)
    if limits.yellow_high is not None:
        rng["high"] = _quantity(limits.yellow_high, measure)
    high = f"; high at >= {limits.yellow_high:g}" if limits.yellow_high is not None else ""
    rng["text"] = f"green range of {label}{high}"
    return [rng]


def _top_direction(verdicts: tuple[Verdict, ...]) -> Direction:
    worst = max(verdicts, key=lambda v: (v.colour.severity, v.direction != Direction.NORMAL))
    return worst.direction


def interpreted(resource: Mapping[str, Any], result: Triage, thresholds: Thresholds, label: str) -> dict[str, Any]:
    """A copy of ``resource`` with its triage; unchanged (a copy) when nothing in it has thresholds."""
    out = dict(resource)  # a shallow copy: only what is changed below is copied (the stored resource is shared)
    if not result.triaged:
        return out
    components = [dict(c) if isinstance(c, dict) else c for c in out.get("component") or []]
    if components:
        out["component"] = components
    for verdict in result.verdicts:
        if verdict.component is not None and verdict.component < len(components):
            comp = components[verdict.component]
            comp["interpretation"] = _concepts(verdict.colour, verdict.direction)
            ranges = reference_range(verdict.measure, thresholds, label)
            if ranges:
                comp["referenceRange"] = ranges
        elif verdict.component is None:
            ranges = reference_range(verdict.measure, thresholds, label)
            if ranges:
                out["referenceRange"] = ranges
    out["interpretation"] = _concepts(result.colour, _top_direction(result.verdicts))
    return out
