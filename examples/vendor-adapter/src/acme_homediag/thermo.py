"""``acme-thermo-json``: a reading of ACME's cloud thermometer, as ACME's cloud sends it.

ACME's cloud posts one JSON object per measurement::

    {"celsius": "37.2", "taken": "2026-11-20T08:30:00+01:00"}

- ``celsius``: the temperature in degrees Celsius, as a decimal string or a JSON number, with the
  digits the thermometer measured ("37.20" is more precise than "37.2"); ``"Err"`` when the probe
  could not measure.
- ``taken``: when it was measured, ISO 8601, with the UTC offset when the thermometer knows it
  (without one it is local time where the patient is); absent when the thermometer's clock was
  never set, in which case the platform dates the reading by the gateway's receive time.
- ``demo`` (optional, default false): the thermometer's demo mode; such readings are labelled as
  test data.
- ``mode`` (optional, default ``"patient"``): ``"calibration"`` for the thermometer's self-check
  against its reference probe, which is never a patient's reading.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from homediag.adapters.devices import DecodeError, DeviceTime, Measured, Number, Reading, SpecialValue

KNOWN_FIELDS = {"celsius", "taken", "demo", "mode"}


class AcmeThermoJsonAdapter:
    id = "acme-thermo-json"
    description = "ACME cloud thermometer JSON: body temperature in Celsius, with the time it was taken"
    input_kind = "json"  # the envelope's "data" object; "bytes" for payload_hex / payload_base64
    reads = ("body-temperature",)  # measurement keys of fhir_profiles/measurements.toml

    def decode(self, payload: dict[str, Any]) -> list[Reading]:
        if not isinstance(payload, dict):
            raise DecodeError(f"expected a JSON object, got {type(payload).__name__}")
        unknown = sorted(set(payload) - KNOWN_FIELDS)
        if unknown:
            raise DecodeError(
                f"unknown field(s) {', '.join(unknown)}; ACME sends only {', '.join(sorted(KNOWN_FIELDS))}",
                field=unknown[0],
            )
        mode = payload.get("mode", "patient")
        if mode not in ("patient", "calibration"):
            raise DecodeError(f"mode must be 'patient' or 'calibration', not {mode!r}", field="mode")
        demo = payload.get("demo", False)
        if not isinstance(demo, bool):
            raise DecodeError("demo must be true or false", field="demo")
        reading = Reading(
            measurement="body-temperature",
            value=Measured("body-temperature", _celsius(payload), "Cel"),  # "Cel" is UCUM for degrees Celsius
            device_time=_taken(payload.get("taken")),
            test_data=demo,
        )
        if mode == "calibration":
            # a self-check: keep it in the upload log, never as a patient's reading
            reading = Reading(
                measurement=reading.measurement,
                value=reading.value,
                device_time=reading.device_time,
                test_data=demo,
                disposition="discard",
                disposition_reason="ACME calibration check against the reference probe",
            )
        return [reading]


def _celsius(payload: dict[str, Any]) -> Number:
    if "celsius" not in payload:
        raise DecodeError("missing: every ACME measurement carries its temperature", field="celsius")
    raw = payload["celsius"]
    if raw == "Err":
        return Number(special=SpecialValue.NRES)  # the probe could not measure: no value, a dataAbsentReason
    if isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)):
        # JSON numbers arrive as Decimal (the platform parses JSON with exact decimals), never float
        raise DecodeError(f'expected a decimal number such as "37.2", got {type(raw).__name__}', field="celsius")
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise DecodeError(f"not a decimal number: {str(raw)[:20]!r}", field="celsius") from None
    if not value.is_finite():
        raise DecodeError(f"not a finite number: {str(raw)[:20]!r}", field="celsius")
    return Number(value=value)


def _taken(raw: Any) -> DeviceTime | None:
    if raw is None:
        return None  # the clock was never set: the platform uses the gateway's receive time
    if not isinstance(raw, str):
        raise DecodeError(f"expected an ISO 8601 date-time string, got {type(raw).__name__}", field="taken")
    try:
        taken = datetime.fromisoformat(raw)
    except ValueError:
        raise DecodeError(f"not an ISO 8601 date-time: {raw[:40]!r}", field="taken") from None
    return DeviceTime(
        taken.year,
        taken.month,
        taken.day,
        taken.hour,
        taken.minute,
        taken.second,
        utc_offset=taken.utcoffset(),  # None when ACME sent local time without an offset
    )
