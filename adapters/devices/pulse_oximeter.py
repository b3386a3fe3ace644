"""PLX Spot-check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F), Bluetooth Pulse Oximeter Service.

Spot-check layout (little-endian): flags (uint8); SpO2 (SFLOAT, %) and pulse rate (SFLOAT, /min);
then, as the flags announce, a timestamp (Date Time, bit 0), the measurement status (16 bits,
bit 1), the device and sensor status (24 bits, bit 2) and the pulse amplitude index (SFLOAT, %,
bit 3). Flag bit 4 says the device clock is not set; bits 5-7 are reserved and must be 0.

Continuous layout: flags (uint8); SpO2PR-Normal (SpO2 and PR, SFLOAT each); then SpO2PR-Fast
(bit 0), SpO2PR-Slow (bit 1), the measurement status (bit 2), the device and sensor status (bit 3)
and the pulse amplitude index (bit 4). Bits 5-7 are reserved and must be 0. No timestamp: the
gateway's receive time dates the reading.

Measurement status bits 5-15 (0-4 reserved): measurement ongoing, early estimated data, validated
data, fully qualified data, data from measurement storage, data for demonstration, data for
testing, calibration ongoing, measurement unavailable, questionable measurement detected, invalid
measurement detected. "Data for demonstration" (bit 10) and "data for testing" (bit 11) make the
readings test data (security label HTEST). Device and sensor status bits 0-15 (16-23 reserved).

Readings: ``spo2`` and ``pulse-rate-oximeter`` (the Normal values for a continuous measurement;
the Fast and Slow values and the pulse amplitude index go in ``Reading.extra``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .bytereader import ByteReader
from .errors import DecodeError
from .ieee11073 import Number, SpecialValue, encode_sfloat, encode_sfloat_special
from .readings import DeviceTime, Measured, Reading
from .thermometer import encode_date_time

MEASUREMENT_STATUS_BITS: tuple[tuple[int, str], ...] = (
    (5, "measurement-ongoing"),
    (6, "early-estimated-data"),
    (7, "validated-data"),
    (8, "fully-qualified-data"),
    (9, "data-from-measurement-storage"),
    (10, "data-for-demonstration"),
    (11, "data-for-testing"),
    (12, "calibration-ongoing"),
    (13, "measurement-unavailable"),
    (14, "questionable-measurement-detected"),
    (15, "invalid-measurement-detected"),
)
TEST_DATA_BITS = 1 << 10 | 1 << 11

DEVICE_SENSOR_STATUS_BITS: tuple[tuple[int, str], ...] = (
    (0, "extended-display-update-ongoing"),
    (1, "equipment-malfunction-detected"),
    (2, "signal-processing-irregularity-detected"),
    (3, "inadequate-signal-detected"),
    (4, "poor-signal-detected"),
    (5, "low-perfusion-detected"),
    (6, "erratic-signal-detected"),
    (7, "nonpulsatile-signal-detected"),
    (8, "questionable-pulse-detected"),
    (9, "signal-analysis-ongoing"),
    (10, "sensor-interference-detected"),
    (11, "sensor-unconnected-to-user"),
    (12, "unknown-sensor-connected"),
    (13, "sensor-displaced"),
    (14, "sensor-malfunctioning"),
    (15, "sensor-disconnected"),
)

UNIT_PERCENT = "%"
UNIT_PER_MIN = "/min"


@dataclass(frozen=True, slots=True)
class SpO2PR:
    spo2: Number
    pulse_rate: Number


@dataclass(frozen=True, slots=True)
class PlxSpotCheck:
    """A PLX Spot-check Measurement value, field by field."""

    flags: int
    reading: SpO2PR
    timestamp: DeviceTime | None
    measurement_status: int | None
    device_sensor_status: int | None
    pulse_amplitude_index: Number | None

    @property
    def clock_set(self) -> bool:
        return not self.flags & 0x10


@dataclass(frozen=True, slots=True)
class PlxContinuous:
    """A PLX Continuous Measurement value, field by field."""

    flags: int
    normal: SpO2PR
    fast: SpO2PR | None
    slow: SpO2PR | None
    measurement_status: int | None
    device_sensor_status: int | None
    pulse_amplitude_index: Number | None


def _uint24(reader: ByteReader, field: str) -> int:
    return int.from_bytes(reader._take(3, field), "little")  # noqa: SLF001 - the reader's own bounds check names field and offset


def _spo2pr(reader: ByteReader, prefix: str) -> SpO2PR:
    return SpO2PR(reader.sfloat(f"{prefix}.spo2"), reader.sfloat(f"{prefix}.pulse_rate"))


def parse_spot(payload: bytes) -> PlxSpotCheck:
    """Read every field of a 0x2A5E value; refuse one that is short or disagrees with its flags."""
    reader = ByteReader(payload)
    flags = reader.uint8("flags")
    if flags & 0xE0:
        raise DecodeError(f"reserved flag bits 5-7 are set (flags {flags:#04x})", field="flags", offset=0)
    reading = _spo2pr(reader, "spo2pr_spot_check")
    timestamp = reader.date_time("timestamp") if flags & 0x01 else None
    status = reader.uint16("measurement_status") if flags & 0x02 else None
    device = _uint24(reader, "device_and_sensor_status") if flags & 0x04 else None
    pai = reader.sfloat("pulse_amplitude_index") if flags & 0x08 else None
    reader.expect_end()
    return PlxSpotCheck(flags, reading, timestamp, status, device, pai)


def parse_continuous(payload: bytes) -> PlxContinuous:
    """Read every field of a 0x2A5F value; refuse one that is short or disagrees with its flags."""
    reader = ByteReader(payload)
    flags = reader.uint8("flags")
    if flags & 0xE0:
        raise DecodeError(f"reserved flag bits 5-7 are set (flags {flags:#04x})", field="flags", offset=0)
    normal = _spo2pr(reader, "spo2pr_normal")
    fast = _spo2pr(reader, "spo2pr_fast") if flags & 0x01 else None
    slow = _spo2pr(reader, "spo2pr_slow") if flags & 0x02 else None
    status = reader.uint16("measurement_status") if flags & 0x04 else None
    device = _uint24(reader, "device_and_sensor_status") if flags & 0x08 else None
    pai = reader.sfloat("pulse_amplitude_index") if flags & 0x10 else None
    reader.expect_end()
    return PlxContinuous(flags, normal, fast, slow, status, device, pai)


def status_flags(measurement_status: int | None, device_sensor_status: int | None) -> dict[str, bool] | None:
    """Every defined status bit by name (measurement status, then device and sensor status); None when neither
    was sent."""
    if measurement_status is None and device_sensor_status is None:
        return None
    out: dict[str, bool] = {}
    if measurement_status is not None:
        out |= {name: bool(measurement_status & (1 << bit)) for bit, name in MEASUREMENT_STATUS_BITS}
    if device_sensor_status is not None:
        out |= {name: bool(device_sensor_status & (1 << bit)) for bit, name in DEVICE_SENSOR_STATUS_BITS}
    return out


def _text(number: Number) -> str:
    return str(number.value) if number.special is None else number.special.label


def _readings(
    values: SpO2PR,
    *,
    device_time: DeviceTime | None,
    clock_set: bool,
    measurement_status: int | None,
    device_sensor_status: int | None,
    extra: dict[str, str],
) -> list[Reading]:
    flags = status_flags(measurement_status, device_sensor_status)
    test_data = bool((measurement_status or 0) & TEST_DATA_BITS)

    def reading(measurement: str, number: Number, unit: str) -> Reading:
        return Reading(
            measurement=measurement,
            value=Measured(measurement, number, unit),
            device_time=device_time,
            flags=flags,
            extra=extra,
            clock_set=clock_set,
            test_data=test_data,
        )

    return [reading("spo2", values.spo2, UNIT_PERCENT), reading("pulse-rate-oximeter", values.pulse_rate, UNIT_PER_MIN)]


class BlePlxSpotCheckAdapter:
    """``ble-plx-spot``: a pulse oximeter's PLX Spot-check Measurement (0x2A5E)."""

    id = "ble-plx-spot"
    description = (
        "Bluetooth PLX Spot-check Measurement (0x2A5E): SpO2, pulse rate, timestamp, measurement and device status, "
        "pulse amplitude index"
    )
    input_kind = "bytes"
    reads: tuple[str, ...] = ("spo2", "pulse-rate-oximeter")

    def decode(self, payload: bytes) -> list[Reading]:
        m = parse_spot(payload)
        extra: dict[str, str] = {}
        if m.pulse_amplitude_index is not None:
            extra["pulse_amplitude_index_percent"] = _text(m.pulse_amplitude_index)
        if not m.clock_set:
            extra["device_clock"] = "not set"
        return _readings(
            m.reading,
            device_time=m.timestamp,
            clock_set=m.clock_set,
            measurement_status=m.measurement_status,
            device_sensor_status=m.device_sensor_status,
            extra=extra,
        )


class BlePlxContinuousAdapter:
    """``ble-plx-continuous``: a pulse oximeter's PLX Continuous Measurement (0x2A5F)."""

    id = "ble-plx-continuous"
    description = (
        "Bluetooth PLX Continuous Measurement (0x2A5F): SpO2 and pulse rate (normal, fast, slow), "
        "measurement and device status, pulse amplitude index"
    )
    input_kind = "bytes"
    reads: tuple[str, ...] = ("spo2", "pulse-rate-oximeter")

    def decode(self, payload: bytes) -> list[Reading]:
        m = parse_continuous(payload)
        extra: dict[str, str] = {}
        for name, values in (("fast", m.fast), ("slow", m.slow)):
            if values is not None:
                extra[f"spo2_{name}_percent"] = _text(values.spo2)
                extra[f"pulse_rate_{name}_per_min"] = _text(values.pulse_rate)
        if m.pulse_amplitude_index is not None:
            extra["pulse_amplitude_index_percent"] = _text(m.pulse_amplitude_index)
        return _readings(
            m.normal,
            device_time=None,
            clock_set=True,
            measurement_status=m.measurement_status,
            device_sensor_status=m.device_sensor_status,
            extra=extra,
        )


Value = Decimal | int | SpecialValue


def _sfloat(value: Value) -> bytes:
    raw = encode_sfloat_special(value) if isinstance(value, SpecialValue) else encode_sfloat(Decimal(value))
    return raw.to_bytes(2, "little")


def encode_spot(
    spo2: Value,
    pulse_rate: Value,
    *,
    timestamp: DeviceTime | None = None,
    measurement_status: int | None = None,
    device_sensor_status: int | None = None,
    pulse_amplitude_index: Value | None = None,
    clock_not_set: bool = False,
) -> bytes:
    """Make a 0x2A5E payload: for tests and the demo."""
    flags = (
        (0x01 if timestamp else 0)
        | (0x02 if measurement_status is not None else 0)
        | (0x04 if device_sensor_status is not None else 0)
    )
    flags |= (0x08 if pulse_amplitude_index is not None else 0) | (0x10 if clock_not_set else 0)
    out = bytearray([flags]) + _sfloat(spo2) + _sfloat(pulse_rate)
    if timestamp:
        out += encode_date_time(timestamp)
    if measurement_status is not None:
        out += measurement_status.to_bytes(2, "little")
    if device_sensor_status is not None:
        out += device_sensor_status.to_bytes(3, "little")
    if pulse_amplitude_index is not None:
        out += _sfloat(pulse_amplitude_index)
    return bytes(out)


def encode_continuous(
    spo2: Value,
    pulse_rate: Value,
    *,
    fast: tuple[Value, Value] | None = None,
    slow: tuple[Value, Value] | None = None,
    measurement_status: int | None = None,
    device_sensor_status: int | None = None,
    pulse_amplitude_index: Value | None = None,
) -> bytes:
    """Make a 0x2A5F payload: for tests and the demo."""
    flags = (0x01 if fast else 0) | (0x02 if slow else 0) | (0x04 if measurement_status is not None else 0)
    flags |= (0x08 if device_sensor_status is not None else 0) | (0x10 if pulse_amplitude_index is not None else 0)
    out = bytearray([flags]) + _sfloat(spo2) + _sfloat(pulse_rate)
    for pair in (fast, slow):
        if pair:
            out += _sfloat(pair[0]) + _sfloat(pair[1])
    if measurement_status is not None:
        out += measurement_status.to_bytes(2, "little")
    if device_sensor_status is not None:
        out += device_sensor_status.to_bytes(3, "little")
    if pulse_amplitude_index is not None:
        out += _sfloat(pulse_amplitude_index)
    return bytes(out)
