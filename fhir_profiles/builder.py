"""Reading -> FHIR R4 Observation(s), after the HL7 PHD IG 2.0.0 and the FHIR vital-signs profiles.

The builder makes plain FHIR JSON (dicts with Decimal values), correct by construction: its tests
validate every shape it makes with ``fhir.resources.R4B``. On the ingest hot path only the cheap
profile rules run on its output.

Ids are derived from the dedup identifier, so the same reading always gets the same id and the
status Observation can point at its measurement (``derivedFrom``) before either is stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from homediag.adapters.devices.ieee11073 import Number
from homediag.adapters.devices.readings import DeviceTime, Measured, Reading

from . import terminology as t
from .profiles import CANONICAL, PROFILE_BASE, PROFILES

DEDUP_SYSTEM = f"{CANONICAL}/sid/reading"
EXT_DEVICE_TIME = f"{PROFILE_BASE}/device-time"
EXT_GATEWAY_RECEIVED = f"{PROFILE_BASE}/gateway-received-time"
EXT_USER_ID = f"{PROFILE_BASE}/device-user-id"
EXT_GATEWAY_DEVICE = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
PHD_PROFILE = "http://hl7.org/fhir/uv/phd/StructureDefinition"
COPENHAGEN = ZoneInfo("Europe/Copenhagen")

_CATEGORY_DISPLAY = {"vital-signs": "Vital Signs", "laboratory": "Laboratory", "procedure": "Procedure"}
PHD_CATEGORY: dict[str, Any] = {"coding": [{"system": t.PHD_CATEGORY, "code": "phd"}]}


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Where a reading came from and whom it belongs to (by platform id only: no identity, no patient key)."""

    patient_id: str
    device_id: str
    gateway_received_at: datetime  # aware
    gateway_device_id: str | None = None
    local_zone: ZoneInfo = COPENHAGEN
    npu_system: str = t.NPU_DK_CORE


@dataclass(frozen=True, slots=True)
class Built:
    """An Observation with what the store indexes beside it."""

    resource: dict[str, object]
    dedup: str
    measurement: str
    effective: datetime  # aware
    value: Decimal | None
    unit: str | None


def effective_time(device_time: DeviceTime | None, ctx: BuildContext, clock_set: bool = True) -> tuple[datetime, bool]:
    """The time the reading was taken, and whether it came from the device's own clock.

    A device time without an offset is local time in ``ctx.local_zone``; a time with an unknown
    year (or none at all) cannot date the reading, so the gateway's receive time stands in for it.
    """
    naive = device_time.as_naive_datetime() if device_time is not None and clock_set else None
    if naive is None:
        return ctx.gateway_received_at, False
    assert device_time is not None
    if device_time.utc_offset is not None:
        return naive.replace(tzinfo=timezone(device_time.utc_offset)), True
    return naive.replace(tzinfo=ctx.local_zone), True


def fhir_datetime(value: datetime) -> str:
    """An instant with its UTC offset, to the second (``2026-11-26T08:01:02+01:00``). An offset FHIR
    cannot write, in seconds (Copenhagen's local mean time before 1894 was +00:50:20), is given in UTC."""
    offset = value.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        value = value.astimezone(UTC)
    return value.isoformat(timespec="seconds")


def _canonical_value(number: Number, from_unit: str, m: t.Measurement) -> tuple[Decimal | None, str]:
    """The value in the canonical UCUM unit, keeping the device's precision.

    A converted value keeps as many significant digits as the device sent (18.9 kPa -> 142 mm[Hg],
    98.6 [degF] -> 37.0 Cel), never more decimals than that; an unconverted one is kept exactly.
    """
    assert m.unit is not None
    if number.value is None:
        return None, m.unit
    conversion = m.conversions.get(from_unit)
    if conversion is None:
        raise ValueError(f"{m.key}: unit '{from_unit}' has no conversion to '{m.unit}'")
    value = number.value
    if conversion.is_identity:
        return (_quantize(value, Decimal(1)) if _exponent(value) > 0 else value), m.unit
    significant = len(value.as_tuple().digits)
    converted = conversion.apply(value)
    if converted == 0:
        return Decimal(0), m.unit
    exponent = min(converted.adjusted() - significant + 1, 0)
    return _quantize(converted, Decimal(1).scaleb(exponent)), m.unit


def _exponent(value: Decimal) -> int:
    """The exponent of a finite Decimal (``as_tuple`` gives a letter for NaN and infinity)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not a finite number")
    return exponent


def _quantize(value: Decimal, step: Decimal) -> Decimal:
    """``value.quantize(step)`` (half up) with the precision it needs: a 32-bit FLOAT reaches 10**134,
    beyond the default 28 digits, where a plain quantize raises InvalidOperation."""
    with localcontext() as ctx:
        ctx.prec = max(ctx.prec, value.adjusted() - _exponent(step) + 2)
        return value.quantize(step, rounding=ROUND_HALF_UP)


def _quantity(value: Decimal, unit: str, m: t.Measurement) -> dict[str, object]:
    return {"value": value, "unit": m.unit_display or unit, "system": t.UCUM, "code": unit}


def _data_absent(number: Number) -> dict[str, object]:
    assert number.special is not None
    return {
        "coding": [{"system": t.DATA_ABSENT_REASON, "code": number.special.data_absent_reason}],
        "text": number.special.label,
    }


def _value_elements(measured: Measured) -> tuple[dict[str, object], Decimal | None, str]:
    m = t.measurement(measured.measurement)
    value, unit = _canonical_value(measured.number, measured.unit, m)
    if value is None:
        return {"dataAbsentReason": _data_absent(measured.number)}, None, unit
    return {"valueQuantity": _quantity(value, unit, m)}, value, unit


def dedup_identifier(ctx: BuildContext, code: str, reading: Reading, effective: datetime, from_device: bool) -> str:
    """The PHD-style dedup key: device, patient, code, time, values, hashed.

    PHD IG concatenates device id, patient id, code and time; here the patient part is the patient's
    platform id (stable across pseudonym-key rotations, unlike the patient key), and the whole is
    hashed so that the identifier shown to readers carries none of it.
    When the device's clock cannot date the reading, the gateway's receive time is part of the key:
    otherwise equal readings from a cuff with an unset clock on different days would merge.
    """
    parts = [ctx.device_id, ctx.patient_id, code, str(reading.user_id)]
    if reading.device_time is not None:
        parts.append(reading.device_time.text())
    if not from_device:
        parts.append(f"gateway:{fhir_datetime(effective)}")
    values = [reading.value] if reading.value is not None else list(reading.components)
    parts += [
        f"{v.measurement}={v.number.value if v.number.value is not None else v.number.special}{v.unit}" for v in values
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _categories(m: t.Measurement) -> list[dict[str, Any]]:
    """The measurement's observation category (vital-signs, laboratory, procedure), then PHD's own."""
    if m.category == "phd":
        return [PHD_CATEGORY]
    display = _CATEGORY_DISPLAY.get(m.category, m.category)
    own: dict[str, Any] = {
        "coding": [{"system": t.OBSERVATION_CATEGORY, "code": m.category, "display": display}],
        "text": display,
    }
    return [own, PHD_CATEGORY]


def _base(
    m: t.Measurement,
    dedup: str,
    ctx: BuildContext,
    effective: datetime,
    reading: Reading,
    from_device: bool,
    profiles: list[str],
) -> dict[str, object]:
    meta: dict[str, object] = {"profile": profiles}
    resource: dict[str, object] = {"resourceType": "Observation", "id": dedup[:32], "meta": meta}
    extensions: list[dict[str, object]] = []
    if ctx.gateway_device_id:
        extensions.append(
            {"url": EXT_GATEWAY_DEVICE, "valueReference": {"reference": f"Device/{ctx.gateway_device_id}"}}
        )
    if reading.device_time is not None and not from_device:
        extensions.append({"url": EXT_DEVICE_TIME, "valueString": reading.device_time.text()})
    if not from_device:
        extensions.append({"url": EXT_GATEWAY_RECEIVED, "valueDateTime": fhir_datetime(ctx.gateway_received_at)})
    if reading.user_id is not None:
        extensions.append({"url": EXT_USER_ID, "valueInteger": reading.user_id})
    if extensions:
        resource["extension"] = extensions
    if reading.test_data:
        meta["security"] = [{"system": t.ACT_REASON, "code": "HTEST", "display": "test health data"}]
    resource["identifier"] = [{"system": DEDUP_SYSTEM, "value": dedup}]
    resource["status"] = "final"
    resource["category"] = _categories(m)
    resource["code"] = m.code_fhir(ctx.npu_system)
    resource["subject"] = {"reference": f"Patient/{ctx.patient_id}"}
    resource["effectiveDateTime"] = fhir_datetime(effective)
    if reading.body_site is not None:
        resource["bodySite"] = {
            "coding": [{"system": t.SNOMED, "code": reading.body_site[0], "display": reading.body_site[1]}],
            "text": reading.body_site[1],
        }
    resource["device"] = {"reference": f"Device/{ctx.device_id}"}
    return resource


def build(reading: Reading, ctx: BuildContext) -> list[Built]:
    """The Observations for one reading: the measurement, and its status when the device sent any bit set."""
    m = t.measurement(reading.measurement)
    effective, from_device = effective_time(reading.device_time, ctx, reading.clock_set)
    dedup = dedup_identifier(ctx, m.primary_code, reading, effective, from_device)
    out: list[Built] = []
    if m.components:
        resource = _base(
            m,
            dedup,
            ctx,
            effective,
            reading,
            from_device,
            [PROFILES[m.key].url, f"{PHD_PROFILE}/PhdCompoundNumericObservation"],
        )
        components = []
        for measured in reading.components:
            cm = t.measurement(measured.measurement)
            elements, _, _ = _value_elements(measured)
            components.append({"code": cm.code_fhir(ctx.npu_system), **elements})
        resource["component"] = components
        out.append(Built(resource, dedup, m.key, effective, None, None))
    else:
        assert reading.value is not None
        resource = _base(
            m,
            dedup,
            ctx,
            effective,
            reading,
            from_device,
            [PROFILES[m.key].url, f"{PHD_PROFILE}/PhdNumericObservation"],
        )
        elements, value, unit = _value_elements(reading.value)
        resource.update(elements)
        out.append(Built(resource, dedup, m.key, effective, value, unit))
    status_key = t.STATUS_MEASUREMENT_OF.get(m.key)
    if status_key and reading.flags_set:
        out.append(
            _status_observation(status_key, reading, ctx, effective, from_device, derived_from=str(resource["id"]))
        )
    return out


def _status_observation(
    key: str, reading: Reading, ctx: BuildContext, effective: datetime, from_device: bool, derived_from: str
) -> Built:
    """The PHD BITs Observation: one boolean component per status bit that the device set."""
    m = t.measurement(key)
    code = m.primary_code
    dedup = dedup_identifier(ctx, code, reading, effective, from_device)
    resource = _base(
        m,
        dedup,
        ctx,
        effective,
        reading,
        from_device,
        [PROFILES[m.key].url, f"{PHD_PROFILE}/PhdBitsEnumerationObservation"],
    )
    resource["derivedFrom"] = [{"reference": f"Observation/{derived_from}"}]
    bit_of = t.STATUS_BITS[key]
    resource["component"] = [
        {
            "code": {"coding": [{"system": t.ASN1_TO_HL7, "code": f"{code}.{bit_of[name]}", "display": name}]},
            "valueBoolean": True,
        }
        for name in reading.flags_set
    ]
    return Built(resource, dedup, m.key, effective, None, None)
