"""Readings as the web app shows them: an Observation row turned into what a clinician reads off it
(measurement, values per component, the device's, gateway's and platform's times, device, flags).

Pure shaping of rows the access layer has already decided on; no decision here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from homediag.fhir_profiles import terminology
from homediag.identity import _century
from homediag.monitoring import persisted
from homediag.store import models as m

DEVICE_TIME_EXT = "https://homediag.example.org/fhir/StructureDefinition/device-time"
# The measurements a worklist and a patient page show a series of (a status observation is a flag, and a
# component is shown inside its panel).
SHOWN_KINDS = ("panel", "quantity")


@dataclass
class Reading:
    id: str
    measurement: str  # terminology key: blood-pressure, pulse-rate, spo2, ...
    text: str
    unit: str
    values: dict[str, float]  # component key (or the measurement's own key) -> value in the canonical unit
    effective: datetime  # the device's time (or the gateway's when the device clock could not date it)
    received_at: datetime  # the platform's
    gateway_received_at: datetime | None
    device: str  # manufacturer and model
    gateway: str
    clock_not_set: bool
    flags: list[str] = field(default_factory=list)  # status bit names (irregular-pulse, cuff-fit-loose, ...)
    triage: str | None = None  # red | yellow | green, from homediag.monitoring (None: no thresholds for it)
    acknowledged: bool = False
    reasons: list[str] = field(default_factory=list)  # why it is not green, in words


def birth_date(cpr: str) -> date | None:
    """The date of birth a CPR number carries (ddmmyy and the century from its 7th digit)."""
    digits = cpr.replace("-", "")
    if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
        return None
    yy = int(digits[4:6])
    try:
        return date(_century(yy, int(digits[6])) + yy, int(digits[2:4]), int(digits[0:2]))
    except ValueError:
        return None


_IDENTIFIED: dict[tuple[tuple[Any, str], ...], terminology.Measurement | None] = {}


def identify(concept: Any) -> terminology.Measurement | None:
    """``terminology.identify``, remembered by the codings' (system, code) pairs, all it looks at: a page shapes
    thousands of readings of a handful of codes."""
    codings = concept.get("coding") if isinstance(concept, dict) else None
    key = tuple(
        (c["system"] if isinstance(c.get("system"), str) else None, str(c.get("code")))
        for c in (codings if isinstance(codings, list) else [])
        if isinstance(c, dict)
    )
    try:
        return _IDENTIFIED[key]
    except KeyError:
        found = _IDENTIFIED[key] = terminology.identify(concept)
        if len(_IDENTIFIED) > 10_000:
            _IDENTIFIED.clear()
        return found


def aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _quantity(q: Any) -> float | None:
    value = q.get("value") if isinstance(q, dict) else None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):  # Decimal: the column's exact decoder
        return float(value)
    return None


@dataclass(frozen=True)
class Shape:
    """What a page takes from an Observation's resource: a shown reading (``measurement`` set), a status
    observation (``about``: the reading its ``flags`` are about) or neither. A stored Observation never changes,
    so its shape is remembered by (patient key, id) in process (``shapes``)."""

    measurement: str | None = None
    text: str = ""
    unit: str = ""
    values: tuple[tuple[str, float], ...] = ()
    clock_not_set: bool = False
    about: str | None = None
    flags: tuple[str, ...] = ()


NOTHING = Shape()


def shape_of(resource: dict[str, Any]) -> Shape:
    about, flags = status_flags(resource)
    if about is not None:
        return Shape(about=about, flags=tuple(flags))
    found = identify(resource.get("code"))
    if found is None or found.kind not in SHOWN_KINDS:
        return NOTHING
    values: dict[str, float] = {}
    unit = found.unit_display or found.unit or ""
    if found.kind == "panel":
        for comp in resource.get("component") or []:
            part = identify(comp.get("code"))
            value = _quantity(comp.get("valueQuantity"))
            if part is not None and value is not None:
                values[part.key] = value
                unit = part.unit_display or part.unit or unit
    else:
        value = _quantity(resource.get("valueQuantity"))
        if value is not None:
            values[found.key] = value
    if not values:
        return NOTHING
    clock_not_set = any(e.get("url") == DEVICE_TIME_EXT for e in resource.get("extension") or [])
    return Shape(found.key, found.text, unit, tuple(values.items()), clock_not_set)


_SHAPES: dict[tuple[str, str], Shape] = {}
_SHAPES_LIMIT = 300_000
_RESOURCE_TEXT = cast(m.Observation.resource, Text)


def shapes(session: Session, observations: list[tuple[str, str]]) -> dict[str, Shape]:
    """Observation id -> its shape, of (patient key, id) pairs the caller has read under its decision. Those not
    seen before in this process are read from the store's kept shapes (``reading_shape``), else from their
    resources (as text, by the standard library's decoder), and those then kept."""
    unknown = [pair for pair in observations if pair not in _SHAPES]
    if len(_SHAPES) + len(unknown) > _SHAPES_LIMIT:
        _SHAPES.clear()
        unknown = list(observations)
    if unknown:
        table = m.ReadingShape
        for clause in persisted.wanted_clauses(table.patient_key, table.observation_id, unknown):
            for pkey, oid, text in session.execute(
                select(table.patient_key, table.observation_id, table.shape).where(clause)
            ):
                _SHAPES[(pkey, oid)] = _decode_shape(text)
    ids = [oid for pkey, oid in unknown if (pkey, oid) not in _SHAPES]
    parsed: list[tuple[str, str, Shape]] = []
    for n in range(0, len(ids), 500):
        for pkey, oid, text in session.execute(
            select(m.Observation.patient_key, m.Observation.id, _RESOURCE_TEXT).where(
                m.Observation.id.in_(ids[n : n + 500])
            )
        ):
            _SHAPES[(pkey, oid)] = shape = shape_of(json.loads(text))
            parsed.append((pkey, oid, shape))
    keep_shapes(session, parsed)
    return {oid: _SHAPES.get((pkey, oid), NOTHING) for pkey, oid in observations}


def remember_shapes(found: list[tuple[str, str, Shape]]) -> None:
    """Remember the shapes of (patient key, Observation id, shape) in this process, as ``shapes`` does (ingest: the
    readings it has just stored, so that a view or ``web.predraw`` right after does not read them back)."""
    if len(_SHAPES) + len(found) > _SHAPES_LIMIT:
        _SHAPES.clear()
    for pkey, oid, shape in found:
        _SHAPES[(pkey, oid)] = shape


def keep_shapes(session: Session, found: list[tuple[str, str, Shape]]) -> None:
    """Keep the shapes of (patient key, Observation id, shape) in the store (those not kept yet)."""
    rows = sorted(
        ({"patient_key": k, "observation_id": o, "shape": _encode_shape(s)} for k, o, s in found),
        key=lambda r: (r["patient_key"], r["observation_id"]),
    )
    persisted.insert_new(session, m.ReadingShape, rows)


def _encode_shape(shape: Shape) -> str:
    return json.dumps(
        [shape.measurement, shape.text, shape.unit, shape.values, shape.clock_not_set, shape.about, shape.flags]
    )


def _decode_shape(text: str) -> Shape:
    measurement, label, unit, values, clock_not_set, about, flags = json.loads(text)
    if measurement is None and about is None:
        return NOTHING
    return Shape(measurement, label, unit, tuple((k, float(v)) for k, v in values), clock_not_set, about, tuple(flags))


def reading_from(shape: Shape, row: Any, device: str, gateway: str) -> Reading | None:
    """The reading of an Observation row of this shape (None when the shape is not a shown reading)."""
    if shape.measurement is None:
        return None
    return Reading(
        id=row.id,
        measurement=shape.measurement,
        text=shape.text,
        unit=shape.unit,
        values=dict(shape.values),
        effective=aware(row.effective_start),  # type: ignore[arg-type]
        received_at=aware(row.received_at),  # type: ignore[arg-type]
        gateway_received_at=aware(row.gateway_received_at),
        device=device,
        gateway=gateway,
        clock_not_set=shape.clock_not_set,
    )


def reading_of(row: Any, device: str, gateway: str) -> Reading | None:
    """The reading of an Observation row (with its device and gateway names); None for a status observation
    or anything that is not a shown measurement."""
    shape = shape_of(row.resource)
    return reading_from(shape, row, device, gateway) if shape.about is None else None


def status_flags(resource: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(the Observation id a PHD status observation is about, the names of its set bits)."""
    found = identify(resource.get("code"))
    if found is None or found.kind != "status":
        return None, []
    about = None
    for ref in resource.get("derivedFrom") or []:
        text = str(ref.get("reference", ""))
        if text.startswith("Observation/"):
            about = text.split("/", 1)[1]
    names = {str(bit): name for name, bit in found.bits.items()}  # ASN1ToHL7 code "8410608.<bit>" -> bit name
    flags = []
    for comp in resource.get("component") or []:
        if comp.get("valueBoolean") is True:
            codings = (comp.get("code") or {}).get("coding") or []
            code = next((str(c.get("code")) for c in codings if c.get("code")), "")
            flags.append(names.get(code.rpartition(".")[2], code))
    return about, flags
