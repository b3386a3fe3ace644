"""Glucose Measurement, Bluetooth characteristic 0x2A18 (GATT Specification Supplement; Glucose Service).

Layout (little-endian): flags (uint8); sequence number (uint16); base time (Date Time); then, as
the flags announce, a time offset (sint16 minutes, bit 0), the glucose concentration (SFLOAT, in
kg/L when flag bit 2 is 0, mol/L when it is 1) followed by one byte of type (low nibble) and sample
location (high nibble) (bit 1), and a sensor status annunciation (16 bits, bit 3). Bit 4 says a
Glucose Measurement Context (0x2A34) with the same sequence number follows; bits 5-7 are reserved
and must be 0.

The reading's time is the base time plus the time offset. A record without a concentration (flag
bit 1 clear) carries nothing to store and is refused. The type picks the measurement (capillary,
venous, arterial or undetermined; whole blood or plasma); a control-solution test (type 10, or
sample location 4) is decoded as ``glucose-control-solution`` and marked ``discard``: it is the
meter's quality control, never a patient's glucose. Interstitial fluid (type 9, a CGM value) has no
measurement in the terminology table and is refused, as are the reserved types 0 and 11-15.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from .bytereader import ByteReader
from .errors import DecodeError
from .ieee11073 import Number, SpecialValue, encode_sfloat, encode_sfloat_special
from .readings import DeviceTime, Measured, Reading
from .thermometer import encode_date_time

UNIT_KG_PER_L = "kg/L"
UNIT_MOL_PER_L = "mol/L"

# Type nibble -> (name, measurement key of measurements.toml); None: no measurement for it
TYPES: dict[int, tuple[str, str | None]] = {
    1: ("capillary-whole-blood", "glucose-capillary-whole-blood"),
    2: ("capillary-plasma", "glucose-capillary-plasma"),
    3: ("venous-whole-blood", "glucose-venous-whole-blood"),
    4: ("venous-plasma", "glucose-venous-plasma"),
    5: ("arterial-whole-blood", "glucose-arterial-whole-blood"),
    6: ("arterial-plasma", "glucose-arterial-plasma"),
    7: ("undetermined-whole-blood", "glucose-undetermined-whole-blood"),
    8: ("undetermined-plasma", "glucose-undetermined-plasma"),
    9: ("interstitial-fluid", None),
    10: ("control-solution", "glucose-control-solution"),
}
TYPE_CONTROL_SOLUTION = 10

SAMPLE_LOCATIONS: dict[int, str] = {
    1: "finger",
    2: "alternate-site-test",
    3: "earlobe",
    4: "control-solution",
    15: "not-available",
}
LOCATION_CONTROL_SOLUTION = 4
FINGER = ("7569003", "Finger structure")  # SNOMED CT; the same code as the thermometer's finger site

# Sensor Status Annunciation bits (bits 12-15 reserved)
SENSOR_STATUS_BITS: tuple[tuple[int, str], ...] = (
    (0, "device-battery-low"),
    (1, "sensor-malfunction"),
    (2, "sample-size-insufficient"),
    (3, "strip-insertion-error"),
    (4, "strip-type-incorrect"),
    (5, "sensor-result-too-high"),
    (6, "sensor-result-too-low"),
    (7, "sensor-temperature-too-high"),
    (8, "sensor-temperature-too-low"),
    (9, "sensor-read-interrupted"),
    (10, "general-device-fault"),
    (11, "time-fault"),
)


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    """The characteristic value, field by field, as the device sent it."""

    flags: int
    sequence_number: int
    base_time: DeviceTime
    time_offset_minutes: int | None
    concentration: Number | None
    unit: str | None
    type: int | None
    sample_location: int | None
    sensor_status: int | None
    context_follows: bool

    @property
    def type_name(self) -> str | None:
        return None if self.type is None else TYPES.get(self.type, ("reserved", None))[0]

    @property
    def sample_location_name(self) -> str | None:
        return None if self.sample_location is None else SAMPLE_LOCATIONS.get(self.sample_location, "reserved")

    @property
    def control_solution(self) -> bool:
        return self.type == TYPE_CONTROL_SOLUTION or self.sample_location == LOCATION_CONTROL_SOLUTION

    def sensor_status_flags(self) -> dict[str, bool] | None:
        if self.sensor_status is None:
            return None
        return {name: bool(self.sensor_status & (1 << bit)) for bit, name in SENSOR_STATUS_BITS}

    @property
    def time(self) -> DeviceTime:
        """The base time plus the time offset; the base time alone when the date is unknown or impossible."""
        naive = self.base_time.as_naive_datetime()
        if not self.time_offset_minutes or naive is None:
            return self.base_time
        t = naive + timedelta(minutes=self.time_offset_minutes)  # range checked by parse()
        return DeviceTime(t.year, t.month, t.day, t.hour, t.minute, t.second)


def parse(payload: bytes) -> GlucoseMeasurement:
    """Read every field of a 0x2A18 value; refuse one that is short or disagrees with its flags."""
    reader = ByteReader(payload)
    flags = reader.uint8("flags")
    if flags & 0xE0:
        raise DecodeError(f"reserved flag bits 5-7 are set (flags {flags:#04x})", field="flags", offset=0)
    sequence_number = reader.uint16("sequence_number")
    base_time = reader.date_time("base_time")
    time_offset = None
    if flags & 0x01:
        offset_at = reader.offset
        time_offset = reader.sint16("time_offset")
        naive = base_time.as_naive_datetime()
        if naive is not None:
            try:
                year = (naive + timedelta(minutes=time_offset)).year
            except OverflowError:
                year = 0
            if not 1582 <= year <= 9999:
                raise DecodeError(
                    f"base time plus {time_offset} minutes falls outside the years 1582-9999",
                    field="time_offset",
                    offset=offset_at,
                )
    concentration = unit = kind = location = None
    if flags & 0x02:
        concentration = reader.sfloat("glucose_concentration")
        unit = UNIT_MOL_PER_L if flags & 0x04 else UNIT_KG_PER_L
        type_at = reader.offset
        nibbles = reader.uint8("type_sample_location")
        kind, location = nibbles & 0x0F, nibbles >> 4
        if kind not in TYPES:
            raise DecodeError(f"type {kind} is reserved for future use", field="type_sample_location", offset=type_at)
    sensor_status = reader.uint16("sensor_status_annunciation") if flags & 0x08 else None
    reader.expect_end()
    return GlucoseMeasurement(
        flags,
        sequence_number,
        base_time,
        time_offset,
        concentration,
        unit,
        kind,
        location,
        sensor_status,
        bool(flags & 0x10),
    )


class BleGlucoseAdapter:
    """``ble-glucose``: a glucose meter's Glucose Measurement record (0x2A18)."""

    id = "ble-glucose"
    description = (
        "Bluetooth Glucose Measurement (0x2A18): glucose by sample type (kg/L or mol/L), base time and offset, "
        "sample location, sensor status"
    )
    input_kind = "bytes"
    reads: tuple[str, ...] = tuple(key for _, key in TYPES.values() if key is not None)

    def decode(self, payload: bytes) -> list[Reading]:
        m = parse(payload)
        if m.concentration is None or m.unit is None or m.type is None:
            raise DecodeError(
                "flag bit 1 is clear: this record carries no glucose concentration, so there is no reading to store",
                field="flags",
                offset=0,
            )
        key = "glucose-control-solution" if m.control_solution else TYPES[m.type][1]
        if key is None:
            raise DecodeError(
                f"type {m.type} ({m.type_name}) is not a blood glucose; this platform has no measurement for it",
                field="type_sample_location",
                offset=_type_offset(m.flags),
            )
        extra = {
            "sequence_number": str(m.sequence_number),
            "type": f"{m.type_name} ({m.type})",
            "sample_location": f"{m.sample_location_name} ({m.sample_location})",
            "context_follows": "true" if m.context_follows else "false",
        }
        if m.time_offset_minutes is not None:
            extra["base_time"] = m.base_time.text()
            extra["time_offset_minutes"] = str(m.time_offset_minutes)
        control = m.control_solution
        return [
            Reading(
                measurement=key,
                value=Measured(key, m.concentration, m.unit),
                device_time=m.time,
                flags=m.sensor_status_flags(),
                extra=extra,
                body_site=FINGER if m.sample_location == 1 and not control else None,
                disposition="discard" if control else "store",
                disposition_reason="control-solution test" if control else None,
            )
        ]


def _type_offset(flags: int) -> int:
    # flags 1, sequence number 2, base time 7, time offset 2 if present, concentration 2
    return 1 + 2 + 7 + (2 if flags & 0x01 else 0) + 2


def encode(
    concentration: Decimal | int | SpecialValue | None,
    *,
    sequence_number: int = 0,
    base_time: DeviceTime,
    time_offset_minutes: int | None = None,
    mol_per_l: bool = False,
    type: int = 1,
    sample_location: int = 1,
    sensor_status: int | None = None,
    context_follows: bool = False,
) -> bytes:
    """Make a 0x2A18 payload (``concentration=None`` leaves the concentration out): for tests and the demo."""
    flags = (0x01 if time_offset_minutes is not None else 0) | (0x02 if concentration is not None else 0)
    flags |= (0x04 if mol_per_l else 0) | (0x08 if sensor_status is not None else 0) | (0x10 if context_follows else 0)
    out = bytearray([flags])
    out += sequence_number.to_bytes(2, "little")
    out += encode_date_time(base_time)
    if time_offset_minutes is not None:
        out += time_offset_minutes.to_bytes(2, "little", signed=True)
    if concentration is not None:
        raw = (
            encode_sfloat_special(concentration)
            if isinstance(concentration, SpecialValue)
            else encode_sfloat(Decimal(concentration))
        )
        out += raw.to_bytes(2, "little")
        out.append((sample_location << 4) | type)
    if sensor_status is not None:
        out += sensor_status.to_bytes(2, "little")
    return bytes(out)
