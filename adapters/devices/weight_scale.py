"""Weight Measurement, Bluetooth characteristic 0x2A9D (GATT Specification Supplement; Weight Scale Service).

Layout (little-endian): flags (uint8); the weight (uint16: kilograms in steps of 0.005 when flag
bit 0 is 0 (SI), pounds in steps of 0.01 when it is 1 (imperial)); then, as the flags announce, a
timestamp (Date Time, bit 1), a user id (uint8, bit 2; 0xFF means "unknown user"), and BMI (uint16,
steps of 0.1 kg/m2) followed by height (uint16: metres in steps of 0.001 (SI) or inches in steps
of 0.1 (imperial)) (bit 3). Bits 4-7 of the flags are reserved and must be 0.

The weight 0xFFFF means "Measurement Unsuccessful" (Weight Scale Service 1.0): it is a special
value, not 327.675 kg, and becomes a ``dataAbsentReason``; the service then leaves out every
optional field other than the timestamp and the user id, so a payload that also announces BMI and
height is refused.

Values are exact Decimals at the field's resolution: raw 14000 (SI) is ``70.000`` kg.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .bytereader import ByteReader
from .errors import DecodeError
from .ieee11073 import Number, SpecialValue
from .readings import DeviceTime, Measured, Reading
from .thermometer import encode_date_time

UNIT_KG = "kg"
UNIT_LB = "[lb_av]"
UNIT_M = "m"
UNIT_IN = "[in_i]"
UNIT_BMI = "kg/m2"

MEASUREMENT_UNSUCCESSFUL = 0xFFFF
UNKNOWN_USER = 0xFF

# (weight step, height step) per unit system, as exact Decimals: their exponents are the precision
SI = (Decimal("0.005"), Decimal("0.001"))
IMPERIAL = (Decimal("0.01"), Decimal("0.1"))
BMI_STEP = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class WeightMeasurement:
    """The characteristic value, field by field, as the device sent it."""

    flags: int
    imperial: bool
    weight_raw: int
    timestamp: DeviceTime | None
    user_id: int | None
    bmi_raw: int | None
    height_raw: int | None

    @property
    def weight_unit(self) -> str:
        return UNIT_LB if self.imperial else UNIT_KG

    @property
    def height_unit(self) -> str:
        return UNIT_IN if self.imperial else UNIT_M

    @property
    def unsuccessful(self) -> bool:
        return self.weight_raw == MEASUREMENT_UNSUCCESSFUL

    @property
    def weight(self) -> Number:
        if self.unsuccessful:
            return Number(special=SpecialValue.NAN)
        return Number(value=self.weight_raw * (IMPERIAL if self.imperial else SI)[0])

    @property
    def bmi(self) -> Number | None:
        return None if self.bmi_raw is None else Number(value=self.bmi_raw * BMI_STEP)

    @property
    def height(self) -> Number | None:
        return (
            None if self.height_raw is None else Number(value=self.height_raw * (IMPERIAL if self.imperial else SI)[1])
        )


def parse(payload: bytes) -> WeightMeasurement:
    """Read every field of a 0x2A9D value; refuse one that is short or disagrees with its flags."""
    reader = ByteReader(payload)
    flags = reader.uint8("flags")
    if flags & 0xF0:
        raise DecodeError(f"reserved flag bits 4-7 are set (flags {flags:#04x})", field="flags", offset=0)
    weight_raw = reader.uint16("weight")
    timestamp = reader.date_time("timestamp") if flags & 0x02 else None
    user_id = reader.uint8("user_id") if flags & 0x04 else None
    bmi_raw = height_raw = None
    if flags & 0x08:
        if weight_raw == MEASUREMENT_UNSUCCESSFUL:
            raise DecodeError(
                "the weight is 0xFFFF (measurement unsuccessful), so BMI and height must be absent, "
                "but flag bit 3 announces them",
                field="flags",
                offset=0,
            )
        bmi_raw = reader.uint16("bmi")
        height_raw = reader.uint16("height")
    reader.expect_end()
    return WeightMeasurement(flags, bool(flags & 0x01), weight_raw, timestamp, user_id, bmi_raw, height_raw)


class BleWeightScaleAdapter:
    """``ble-weight-scale``: a scale's Weight Measurement indication (0x2A9D)."""

    id = "ble-weight-scale"
    description = (
        "Bluetooth Weight Measurement (0x2A9D): body weight (SI or imperial), timestamp, user id, BMI and height"
    )
    input_kind = "bytes"
    reads: tuple[str, ...] = ("body-weight", "bmi", "body-height")

    def decode(self, payload: bytes) -> list[Reading]:
        m = parse(payload)
        extra: dict[str, str] = {}
        if m.user_id is not None:
            extra["user_id"] = "unknown user (255)" if m.user_id == UNKNOWN_USER else str(m.user_id)
        if m.unsuccessful:
            extra["weight"] = "measurement unsuccessful (0xFFFF)"

        def reading(measurement: str, number: Number, unit: str) -> Reading:
            return Reading(
                measurement=measurement,
                value=Measured(measurement, number, unit),
                device_time=m.timestamp,
                user_id=m.user_id,
                extra=extra,
            )

        readings = [reading("body-weight", m.weight, m.weight_unit)]
        if m.bmi is not None and m.height is not None:
            readings.append(reading("bmi", m.bmi, UNIT_BMI))
            readings.append(reading("body-height", m.height, m.height_unit))
        return readings


def _raw(value: Decimal | int, step: Decimal, field: str) -> int:
    raw, rest = divmod(Decimal(value), step)
    if rest or not 0 <= raw <= 0xFFFF:
        raise ValueError(f"{field} {value} is not a uint16 multiple of {step}")
    return int(raw)


def encode(
    weight: Decimal | int | None,
    *,
    imperial: bool = False,
    timestamp: DeviceTime | None = None,
    user_id: int | None = None,
    bmi: Decimal | int | None = None,
    height: Decimal | int | None = None,
) -> bytes:
    """Make a 0x2A9D payload (``weight=None`` sends 0xFFFF, measurement unsuccessful): for tests and the demo."""
    if (bmi is None) != (height is None):
        raise ValueError("BMI and height travel together")
    weight_step, height_step = IMPERIAL if imperial else SI
    flags = (
        (0x01 if imperial else 0)
        | (0x02 if timestamp else 0)
        | (0x04 if user_id is not None else 0)
        | (0x08 if bmi is not None else 0)
    )
    out = bytearray([flags])
    out += (MEASUREMENT_UNSUCCESSFUL if weight is None else _raw(weight, weight_step, "weight")).to_bytes(2, "little")
    if timestamp:
        out += encode_date_time(timestamp)
    if user_id is not None:
        out.append(user_id)
    if bmi is not None and height is not None:
        out += _raw(bmi, BMI_STEP, "bmi").to_bytes(2, "little")
        out += _raw(height, height_step, "height").to_bytes(2, "little")
    return bytes(out)
