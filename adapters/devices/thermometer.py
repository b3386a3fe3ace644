"""Temperature Measurement, Bluetooth characteristic 0x2A1C (GATT Specification Supplement; Health Thermometer Service).

Layout (little-endian): flags (uint8); the temperature (32-bit IEEE 11073 FLOAT, in degrees Celsius
or, when flag bit 0 is set, degrees Fahrenheit); then, as the flags announce, a timestamp (Date
Time, bit 1) and a temperature type (uint8, bit 2: where on the body it was taken, the format of
the Temperature Type characteristic 0x2A1D). Bits 3-7 of the flags are reserved and must be 0.

Temperature Type values: 1 armpit, 2 body (general), 3 ear (usually earlobe), 4 finger,
5 gastrointestinal tract, 6 mouth, 7 rectum, 8 toe, 9 tympanum (ear drum); 0 and 10-255 are
reserved. Each named site becomes a SNOMED CT body structure (``Reading.body_site``); a reserved
value keeps the reading (the temperature is still a temperature) without a body site, and says so
in ``Reading.extra``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .bytereader import ByteReader
from .errors import DecodeError
from .ieee11073 import Number, SpecialValue
from .readings import DeviceTime, Measured, Reading

UNIT_CELSIUS = "Cel"
UNIT_FAHRENHEIT = "[degF]"

# Temperature Type value -> (name, SNOMED CT body structure code, display).
# Codes: CIMI body-temperature body-location value set (ear 117590005, finger 7569003, oral cavity
# 74262004, rectum 34402009, toe 29707007, tympanic membrane 42859004) and national vital-signs
# profiles (axillary region 91470000: HL7 Norway body-temperature body sites, MII ICU examples;
# gastrointestinal tract 122865005; entire body as a whole 38266002).
TEMPERATURE_TYPES: dict[int, tuple[str, str, str]] = {
    1: ("armpit", "91470000", "Axillary region structure"),
    2: ("body", "38266002", "Entire body as a whole"),
    3: ("ear", "117590005", "Ear structure"),
    4: ("finger", "7569003", "Finger structure"),
    5: ("gastrointestinal-tract", "122865005", "Gastrointestinal tract structure"),
    6: ("mouth", "74262004", "Oral cavity structure"),
    7: ("rectum", "34402009", "Rectum structure"),
    8: ("toe", "29707007", "Toe structure"),
    9: ("tympanum", "42859004", "Tympanic membrane structure"),
}


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    """The characteristic value, field by field, as the device sent it."""

    flags: int
    unit: str
    temperature: Number
    timestamp: DeviceTime | None
    temperature_type: int | None

    @property
    def site(self) -> str | None:
        """The temperature type's name (``finger``), ``reserved`` for a reserved value, None when absent."""
        if self.temperature_type is None:
            return None
        known = TEMPERATURE_TYPES.get(self.temperature_type)
        return known[0] if known else "reserved"

    @property
    def body_site(self) -> tuple[str, str] | None:
        known = TEMPERATURE_TYPES.get(self.temperature_type) if self.temperature_type is not None else None
        return (known[1], known[2]) if known else None


def parse(payload: bytes) -> TemperatureMeasurement:
    """Read every field of a 0x2A1C value; refuse one that is short or disagrees with its flags."""
    reader = ByteReader(payload)
    flags = reader.uint8("flags")
    if flags & 0xF8:
        raise DecodeError(f"reserved flag bits 3-7 are set (flags {flags:#04x})", field="flags", offset=0)
    unit = UNIT_FAHRENHEIT if flags & 0x01 else UNIT_CELSIUS
    temperature = reader.float32("temperature")
    timestamp = reader.date_time("timestamp") if flags & 0x02 else None
    temperature_type = reader.uint8("temperature_type") if flags & 0x04 else None
    reader.expect_end()
    return TemperatureMeasurement(flags, unit, temperature, timestamp, temperature_type)


class BleThermometerAdapter:
    """``ble-thermometer``: a thermometer's Temperature Measurement indication (0x2A1C)."""

    id = "ble-thermometer"
    description = (
        "Bluetooth Temperature Measurement (0x2A1C): body temperature in Celsius or Fahrenheit, timestamp, "
        "temperature type (body site)"
    )
    input_kind = "bytes"
    reads: tuple[str, ...] = ("body-temperature",)

    def decode(self, payload: bytes) -> list[Reading]:
        m = parse(payload)
        extra: dict[str, str] = {}
        if m.temperature_type is not None:
            extra["temperature_type"] = f"{m.site} ({m.temperature_type})"
        return [
            Reading(
                measurement="body-temperature",
                value=Measured("body-temperature", m.temperature, m.unit),
                device_time=m.timestamp,
                extra=extra,
                body_site=m.body_site,
            )
        ]


def encode_float(value: Decimal) -> int:
    """Encode a Decimal as a 32-bit FLOAT, keeping its exponent (for test and demo payloads)."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} has no finite FLOAT encoding")
    mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    # 0x7FFFFE, 0x7FFFFF and -0x800000..-0x7FFFFE are the specials
    if not -128 <= exponent <= 127 or not -(2**23 - 3) <= mantissa <= 2**23 - 3:
        raise ValueError(f"{value} does not fit a FLOAT (mantissa {mantissa}, exponent {exponent})")
    return ((exponent & 0xFF) << 24) | (mantissa & 0xFFFFFF)


_FLOAT_SPECIAL_CODES = {
    SpecialValue.NAN: 0x007FFFFF,
    SpecialValue.NRES: 0x00800000,
    SpecialValue.POSITIVE_INFINITY: 0x007FFFFE,
    SpecialValue.NEGATIVE_INFINITY: 0x00800002,
    SpecialValue.RESERVED: 0x00800001,
}


def encode(
    temperature: Decimal | int | SpecialValue,
    *,
    fahrenheit: bool = False,
    timestamp: DeviceTime | None = None,
    temperature_type: int | None = None,
) -> bytes:
    """Make a 0x2A1C payload: the demo and the tests send real bytes."""
    flags = (0x01 if fahrenheit else 0) | (0x02 if timestamp else 0) | (0x04 if temperature_type is not None else 0)
    out = bytearray([flags])
    raw = (
        _FLOAT_SPECIAL_CODES[temperature]
        if isinstance(temperature, SpecialValue)
        else encode_float(Decimal(temperature))
    )
    out += raw.to_bytes(4, "little")
    if timestamp:
        out += encode_date_time(timestamp)
    if temperature_type is not None:
        out.append(temperature_type)
    return bytes(out)


def encode_date_time(t: DeviceTime) -> bytes:
    """A Bluetooth Date Time (7 bytes), year 0 for an unknown year."""
    return (t.year or 0).to_bytes(2, "little") + bytes([t.month, t.day, t.hours, t.minutes, t.seconds])
