"""Heart Rate Measurement, Bluetooth characteristic 0x2A37 (GATT Specification Supplement; Heart Rate Service).

Layout (little-endian): flags (uint8); the heart rate (uint8, or uint16 when flag bit 0 is set;
beats per minute); then, as the flags announce, the energy expended (uint16 kJ, bit 3) and one or
more RR intervals (uint16 each, in 1/1024 s, bit 4) filling the rest of the value. Flag bits 1-2
are the sensor contact status: 0 or 1 not supported, 2 supported but no contact detected, 3
supported and contact detected. Bits 5-7 are reserved and must be 0.

The characteristic carries no time: the gateway's receive time dates the reading. RR intervals
are kept in ``Reading.extra`` as exact seconds (``0.0322265625`` for 33/1024 s), comma-separated.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from .bytereader import ByteReader
from .errors import DecodeError
from .ieee11073 import Number
from .readings import Measured, Reading

SensorContact = Literal["not_supported", "supported_not_detected", "detected"]
_CONTACT: dict[int, SensorContact] = {
    0: "not_supported",
    1: "not_supported",
    2: "supported_not_detected",
    3: "detected",
}
RR_RESOLUTION = Decimal(1024)


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """The characteristic value, field by field, as the device sent it."""

    flags: int
    heart_rate: int
    sensor_contact: SensorContact
    energy_expended_kj: int | None
    rr_intervals_1024ths: tuple[int, ...]

    @property
    def rr_intervals_seconds(self) -> tuple[Decimal, ...]:
        return tuple(Decimal(rr) / RR_RESOLUTION for rr in self.rr_intervals_1024ths)  # exact: 1024 is 2**10


def parse(payload: bytes) -> HeartRateMeasurement:
    """Read every field of a 0x2A37 value; refuse one that is short or disagrees with its flags."""
    reader = ByteReader(payload)
    flags = reader.uint8("flags")
    if flags & 0xE0:
        raise DecodeError(f"reserved flag bits 5-7 are set (flags {flags:#04x})", field="flags", offset=0)
    heart_rate = reader.uint16("heart_rate") if flags & 0x01 else reader.uint8("heart_rate")
    energy = reader.uint16("energy_expended") if flags & 0x08 else None
    rr: list[int] = []
    if flags & 0x10:
        rr.append(reader.uint16("rr_interval[0]"))  # flag bit 4 announces at least one
        while reader.offset < len(payload):
            if len(payload) - reader.offset == 1:
                raise DecodeError(
                    "one byte left over: RR intervals are 2 bytes each",
                    field=f"rr_interval[{len(rr)}]",
                    offset=reader.offset,
                )
            rr.append(reader.uint16(f"rr_interval[{len(rr)}]"))
    reader.expect_end()
    return HeartRateMeasurement(flags, heart_rate, _CONTACT[(flags >> 1) & 0x03], energy, tuple(rr))


class BleHeartRateAdapter:
    """``ble-heart-rate``: a heart-rate sensor's Heart Rate Measurement notification (0x2A37)."""

    id = "ble-heart-rate"
    description = "Bluetooth Heart Rate Measurement (0x2A37): heart rate, sensor contact, energy expended, RR intervals"
    input_kind = "bytes"
    reads: tuple[str, ...] = ("heart-rate",)

    def decode(self, payload: bytes) -> list[Reading]:
        m = parse(payload)
        extra = {"sensor_contact": m.sensor_contact.replace("_", " ")}
        if m.energy_expended_kj is not None:
            extra["energy_expended_kj"] = str(m.energy_expended_kj)
        if m.rr_intervals_1024ths:
            extra["rr_intervals_s"] = ",".join(str(s) for s in m.rr_intervals_seconds)
        flags = (
            None
            if m.sensor_contact == "not_supported"
            else {"sensor-contact-not-detected": m.sensor_contact == "supported_not_detected"}
        )
        return [
            Reading(
                measurement="heart-rate",
                value=Measured("heart-rate", Number(value=Decimal(m.heart_rate)), "/min"),
                device_time=None,
                flags=flags,
                extra=extra,
            )
        ]


def encode(
    heart_rate: int,
    *,
    uint16: bool | None = None,
    sensor_contact: SensorContact | None = None,
    energy_expended_kj: int | None = None,
    rr_intervals_1024ths: tuple[int, ...] | list[int] = (),
) -> bytes:
    """Make a 0x2A37 payload (the heart rate as uint16 when asked or when it exceeds 255): for tests and the demo."""
    wide = heart_rate > 0xFF if uint16 is None else uint16
    contact_bits = {None: 0, "not_supported": 0, "supported_not_detected": 2, "detected": 3}[sensor_contact]
    flags = (
        (0x01 if wide else 0)
        | (contact_bits << 1)
        | (0x08 if energy_expended_kj is not None else 0)
        | (0x10 if rr_intervals_1024ths else 0)
    )
    out = bytearray([flags]) + heart_rate.to_bytes(2 if wide else 1, "little")
    if energy_expended_kj is not None:
        out += energy_expended_kj.to_bytes(2, "little")
    for rr in rr_intervals_1024ths:
        out += rr.to_bytes(2, "little")
    return bytes(out)
