"""Withings cloud measure group (``withings-measure``): one element of ``measuregrps`` from Measure - Getmeas.

The vendor's API returns measure groups like::

    {"grpid": 12, "attrib": 0, "date": 1594245600, "created": 1594246600, "modified": 1594257200,
     "category": 1, "deviceid": "...", "measures": [{"value": 65750, "type": 1, "unit": -3}]}

- ``date`` is the UNIX time (seconds, UTC) the measures were taken; ``created``/``modified`` are when
  the vendor stored or changed them and are not the measurement time.
- Each measure's real value is ``value`` × 10^``unit`` (65750, -3 is 65.750 kg): decoded exactly with
  ``Decimal(value).scaleb(unit)``, so the precision the vendor sent is kept.
- ``category`` 1 is a real measurement, 2 a user objective (a goal): goals are not readings.
- ``attrib`` says how the group was attributed to the user (Withings API reference, measuregrp
  object): 0 and 8 captured by a device and known to be this user's; 1 captured by a device but
  ambiguous (it may belong to another user of a shared device, e.g. a family scale); 2 entered
  manually for this user; 4 entered manually during user creation (may be inaccurate); 5 automatic
  best value of a blood-pressure monitor's series; 7 confirmed by the user; 15 measured in guided
  conditions. Only device measurements known to be the user's are stored automatically: an
  ambiguous group, a manual entry (not a device measurement) and an attribution code this adapter
  does not know are held for review.

Measure types (Withings API reference, meastype): 1 weight (kg), 4 height (m), 5 fat-free mass,
6 fat ratio, 8 fat mass, 9 diastolic and 10 systolic blood pressure (mmHg), 11 heart pulse (bpm),
12 temperature (°C), 54 SpO2 (%), 71 body temperature (°C), 73 skin temperature, 76 muscle mass,
77 hydration, 88 bone mass, 91 pulse wave velocity, and more. Those the terminology table has a
measurement for are read; every other type is skipped. Withings has no BMI measure type (its app
computes BMI), so no BMI reading comes from this adapter.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from .errors import DecodeError
from .ieee11073 import Number
from .readings import DeviceTime, Disposition, Measured, Reading

# Withings measure type -> (measurement key, UCUM code of the unit Withings uses for it)
TYPE_WEIGHT = 1
TYPE_HEIGHT = 4
TYPE_DIASTOLIC = 9
TYPE_SYSTOLIC = 10
TYPE_HEART_PULSE = 11
TYPE_TEMPERATURE = 12
TYPE_SPO2 = 54
TYPE_BODY_TEMPERATURE = 71

SINGLE_TYPES: dict[int, tuple[str, str]] = {
    TYPE_WEIGHT: ("body-weight", "kg"),
    TYPE_HEIGHT: ("body-height", "m"),
    TYPE_HEART_PULSE: ("pulse-rate", "/min"),
    TYPE_SPO2: ("spo2", "%"),
    TYPE_BODY_TEMPERATURE: ("body-temperature", "Cel"),
    TYPE_TEMPERATURE: ("body-temperature", "Cel"),
}
BP_TYPES: dict[int, str] = {TYPE_SYSTOLIC: "systolic", TYPE_DIASTOLIC: "diastolic"}
UNIT_MMHG = "mm[Hg]"

CATEGORY_MEASURE = 1
CATEGORY_GOAL = 2

ATTRIB_STORE = {0, 5, 7, 8, 15}
ATTRIB_HOLD_REASONS = {
    1: "Withings attrib 1: measured by a shared device and may belong to another of its users",
    2: "Withings attrib 2: entered manually in the vendor app, not measured by the device",
    4: "Withings attrib 4: entered manually when the account was created and may be inaccurate",
}

# bounds that keep a value a plausible decimal, whatever the vendor sends
MAX_EXPONENT = 9
MAX_MANTISSA = 10**12
MAX_DATE = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


class WithingsMeasure(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    value: StrictInt
    type: StrictInt
    unit: StrictInt


class WithingsMeasureGroup(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    grpid: StrictInt | None = None
    attrib: StrictInt
    date: StrictInt
    created: StrictInt | None = None
    modified: StrictInt | None = None
    category: StrictInt
    deviceid: StrictStr | None = None
    measures: list[WithingsMeasure]


def _path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a field path: ``("measures", 2, "unit")`` -> ``measures[2].unit``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "data"


def _as_object(payload: Any) -> dict[str, Any]:
    """The envelope's ``data`` object; JSON text or bytes are read too (``homediag adapters convert --file``)."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("a Withings measure group is JSON in UTF-8", field="data", offset=exc.start) from None
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise DecodeError(
                f"not valid JSON ({exc.msg})",
                field="data",
                offset=len(payload[: exc.pos].encode("utf-8", "surrogatepass")),
            ) from None
        except (ValueError, RecursionError) as exc:  # an integer too long to read, or nesting too deep
            raise DecodeError(f"not readable JSON ({type(exc).__name__})", field="data") from None
    if not isinstance(payload, dict):
        raise DecodeError(f"a Withings measure group is a JSON object, got {type(payload).__name__}", field="data")
    if "measuregrps" in payload or "body" in payload:
        raise DecodeError(
            "send one measure group (an element of body.measuregrps) per envelope, not the whole Getmeas response",
            field="data",
        )
    return payload


def parse(payload: Any) -> WithingsMeasureGroup:
    """Read and check one measure group; a DecodeError names the field path (``measures[2].unit``)."""
    data = _as_object(payload)
    try:
        group = WithingsMeasureGroup.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DecodeError(str(err["msg"]), field=_path(tuple(err["loc"]))) from None
    if not 0 <= group.date <= MAX_DATE:
        raise DecodeError(f"{group.date} is not a UNIX time in seconds", field="date")
    if group.category not in (CATEGORY_MEASURE, CATEGORY_GOAL):
        raise DecodeError(f"unknown category {group.category} (1 is a measure, 2 a user objective)", field="category")
    if not group.measures:
        raise DecodeError("a measure group without measures", field="measures")
    seen: dict[int, int] = {}
    for i, measure in enumerate(group.measures):
        if not -MAX_EXPONENT <= measure.unit <= MAX_EXPONENT:
            raise DecodeError(
                f"unit {measure.unit} is not a plausible power of ten (-{MAX_EXPONENT}..{MAX_EXPONENT})",
                field=f"measures[{i}].unit",
            )
        if abs(measure.value) >= MAX_MANTISSA:
            raise DecodeError(f"value {measure.value} is out of range", field=f"measures[{i}].value")
        if measure.type in seen:
            raise DecodeError(
                f"type {measure.type} appears twice in one group (first at measures[{seen[measure.type]}])",
                field=f"measures[{i}].type",
            )
        seen[measure.type] = i
    return group


def real_value(measure: WithingsMeasure) -> Decimal:
    """``value`` × 10^``unit``, exactly: 65750, -3 -> Decimal('65.750')."""
    return Decimal(measure.value).scaleb(measure.unit)


def device_time(unix_seconds: int) -> DeviceTime:
    t = datetime.fromtimestamp(unix_seconds, UTC)
    return DeviceTime(t.year, t.month, t.day, t.hour, t.minute, t.second, utc_offset=timedelta(0))


class WithingsMeasureAdapter:
    """``withings-measure``: one Withings cloud measure group (Measure - Getmeas ``measuregrps[]`` element)."""

    id = "withings-measure"
    description = (
        "Withings cloud measure group (JSON): weight, height, blood pressure, heart pulse, SpO2, body temperature; "
        "values are value x 10^unit; ambiguous (shared device) and manually entered groups are held for review; "
        "goals are ignored"
    )
    input_kind = "json"
    reads: tuple[str, ...] = ("body-weight", "body-height", "blood-pressure", "pulse-rate", "spo2", "body-temperature")

    def decode(self, payload: Any) -> list[Reading]:
        group = parse(payload)
        if group.category == CATEGORY_GOAL:
            return []  # a user objective, not a measurement
        disposition: Disposition
        reason: str | None
        if group.attrib in ATTRIB_STORE:
            disposition, reason = "store", None
        else:
            disposition = "hold"
            reason = ATTRIB_HOLD_REASONS.get(
                group.attrib, f"Withings attrib {group.attrib} is an attribution this adapter does not know"
            )
        when = device_time(group.date)
        by_type = {m.type: (i, m) for i, m in enumerate(group.measures)}

        def reading(measurement: str, value: Measured | None = None, components: tuple[Measured, ...] = ()) -> Reading:
            return Reading(
                measurement=measurement,
                value=value,
                components=components,
                device_time=when,
                disposition=disposition,
                disposition_reason=reason,
            )

        readings: list[Reading] = []
        bp = {name: by_type[t] for t, name in BP_TYPES.items() if t in by_type}
        if bp:
            if len(bp) != len(BP_TYPES):
                (missing,) = set(BP_TYPES.values()) - set(bp)
                ((present_index, _),) = bp.values()
                raise DecodeError(
                    f"a blood pressure needs systolic (type 10) and diastolic (type 9); the {missing} is missing",
                    field=f"measures[{present_index}].type",
                )
            readings.append(
                reading(
                    "blood-pressure",
                    components=tuple(
                        Measured(name, Number(real_value(bp[name][1])), UNIT_MMHG) for name in ("systolic", "diastolic")
                    ),
                )
            )
        for measure in group.measures:
            if measure.type not in SINGLE_TYPES:
                continue  # BP (above) or a type the terminology table has no measurement for
            if measure.type == TYPE_TEMPERATURE and TYPE_BODY_TEMPERATURE in by_type:
                continue  # both the generic and the body temperature: the body temperature says more
            key, unit = SINGLE_TYPES[measure.type]
            readings.append(reading(key, value=Measured(key, Number(real_value(measure)), unit)))
        return readings
