"""Blood Pressure Measurement, Bluetooth characteristic 0x2A35 (GATT Specification Supplement 3.31).

Layout (little-endian): flags (uint8); systolic, diastolic, mean arterial pressure (SFLOAT each, in
mmHg or kPa as flag bit 0 says); then, as the flags announce, a timestamp (Date Time, bit 1), a
pulse rate (SFLOAT, bit 2), a user id (uint8, bit 3) and a measurement status (uint16, bit 4).
Bits 5-7 of the flags are reserved and must be 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from .bytereader import ByteReader
from .errors import DecodeError
from .ieee11073 import Number, encode_sfloat
from .readings import DeviceTime, Measured, Reading

UNIT_MMHG = "mm[Hg]"
UNIT_KPA = "kPa"

# Measurement status bits, named as the PHD IG's ASN1ToHL7 codes for MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS
# (8410608.<bit>): bits 3 and 4 together are the pulse-rate range (01 above, 10 below, 11 reserved).
STATUS_BITS: tuple[tuple[int, str], ...] = (
    (0, "body-movement"),
    (1, "cuff-too-loose"),
    (2, "irregular-pulse"),
    (3, "pulse-rate-exceeds-upper-limit"),
    (4, "pulse-rate-less-than-lower-limit"),
    (5, "improper-body-position"),
)

PulseRateRange = Literal["within", "above_upper_limit", "below_lower_limit", "reserved"]


@dataclass(frozen=True, slots=True)
class MeasurementStatus:
    raw: int
    body_movement: bool
    cuff_too_loose: bool
    irregular_pulse: bool
    pulse_rate_range: PulseRateRange
    improper_position: bool

    @classmethod
    def from_raw(cls, raw: int) -> MeasurementStatus:
        ranges: dict[int, PulseRateRange] = {0: "within", 1: "above_upper_limit", 2: "below_lower_limit", 3: "reserved"}
        return cls(
            raw=raw,
            body_movement=bool(raw & 0x01),
            cuff_too_loose=bool(raw & 0x02),
            irregular_pulse=bool(raw & 0x04),
            pulse_rate_range=ranges[(raw >> 3) & 0x03],
            improper_position=bool(raw & 0x20),
        )

    def flags(self) -> dict[str, bool]:
        """Every status bit by name; a reserved pulse-rate range (11) sets neither range bit."""
        reserved_range = self.pulse_rate_range == "reserved"
        return {
            name: bool(self.raw & (1 << bit)) and not (bit in (3, 4) and reserved_range) for bit, name in STATUS_BITS
        }


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    """The characteristic value, field by field, as the device sent it."""

    unit: str
    systolic: Number
    diastolic: Number
    mean: Number
    timestamp: DeviceTime | None
    pulse_rate: Number | None
    user_id: int | None
    status: MeasurementStatus | None


def parse(payload: bytes) -> BloodPressureMeasurement:
    """Read every field of a 0x2A35 value; refuse one that is short or disagrees with its flags."""
    reader = ByteReader(payload)
    flags = reader.uint8("flags")
    if flags & 0xE0:
        raise DecodeError(f"reserved flag bits 5-7 are set (flags {flags:#04x})", field="flags", offset=0)
    unit = UNIT_KPA if flags & 0x01 else UNIT_MMHG
    systolic = reader.sfloat("systolic")
    diastolic = reader.sfloat("diastolic")
    mean = reader.sfloat("mean_arterial_pressure")
    timestamp = reader.date_time("timestamp") if flags & 0x02 else None
    pulse_rate = reader.sfloat("pulse_rate") if flags & 0x04 else None
    user_id = reader.uint8("user_id") if flags & 0x08 else None
    status = MeasurementStatus.from_raw(reader.uint16("measurement_status")) if flags & 0x10 else None
    reader.expect_end()
    return BloodPressureMeasurement(unit, systolic, diastolic, mean, timestamp, pulse_rate, user_id, status)


class BleBloodPressureAdapter:
    """``ble-blood-pressure``: a cuff's Blood Pressure Measurement notification (0x2A35)."""

    id = "ble-blood-pressure"
    description = (
        "Bluetooth Blood Pressure Measurement (0x2A35): systolic, diastolic, mean, pulse rate, measurement status"
    )
    input_kind = "bytes"
    reads: tuple[str, ...] = ("blood-pressure", "pulse-rate")

    def decode(self, payload: bytes) -> list[Reading]:
        m = parse(payload)
        flags = m.status.flags() if m.status is not None else None
        extra = {"user_id": str(m.user_id)} if m.user_id is not None else {}
        readings = [
            Reading(
                measurement="blood-pressure",
                components=(
                    Measured("systolic", m.systolic, m.unit),
                    Measured("diastolic", m.diastolic, m.unit),
                    Measured("mean-arterial-pressure", m.mean, m.unit),
                ),
                device_time=m.timestamp,
                flags=flags,
                user_id=m.user_id,
                extra=extra,
            )
        ]
        if m.pulse_rate is not None:
            readings.append(
                Reading(
                    measurement="pulse-rate",
                    value=Measured("pulse-rate", m.pulse_rate, "/min"),
                    device_time=m.timestamp,
                    user_id=m.user_id,
                    extra=extra,
                )
            )
        return readings


def encode(
    values: tuple[Decimal | int, Decimal | int, Decimal | int],
    *,
    unit_kpa: bool = False,
    timestamp: DeviceTime | None = None,
    pulse_rate: Decimal | int | None = None,
    user_id: int | None = None,
    status: int | None = None,
) -> bytes:
    """Make a 0x2A35 payload (systolic, diastolic, mean): the demo and the benchmarks send real bytes."""
    flags = (0x01 if unit_kpa else 0) | (0x02 if timestamp else 0) | (0x04 if pulse_rate is not None else 0)
    flags |= (0x08 if user_id is not None else 0) | (0x10 if status is not None else 0)
    out = bytearray([flags])
    for v in values:
        out += encode_sfloat(Decimal(v)).to_bytes(2, "little")
    if timestamp:
        out += (timestamp.year or 0).to_bytes(2, "little")
        out += bytes([timestamp.month, timestamp.day, timestamp.hours, timestamp.minutes, timestamp.seconds])
    if pulse_rate is not None:
        out += encode_sfloat(Decimal(pulse_rate)).to_bytes(2, "little")
    if user_id is not None:
        out.append(user_id)
    if status is not None:
        out += status.to_bytes(2, "little")
    return bytes(out)
