"""Reads little-endian fields from a Bluetooth characteristic value, naming each field it reads.

Every read checks that the bytes are there; a short payload becomes a :class:`DecodeError` that
names the field and the byte offset it was expected at.
"""

from __future__ import annotations

from .errors import DecodeError
from .ieee11073 import Number, decode_float, decode_sfloat
from .readings import DeviceTime


class ByteReader:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.offset = 0

    def _take(self, size: int, field: str) -> bytes:
        end = self.offset + size
        if end > len(self.payload):
            have = len(self.payload) - self.offset
            raise DecodeError(
                f"payload ends after {len(self.payload)} bytes; {field} needs {size} byte(s) here, {max(have, 0)} left",
                field=field,
                offset=self.offset,
            )
        chunk = self.payload[self.offset : end]
        self.offset = end
        return chunk

    def uint8(self, field: str) -> int:
        return self._take(1, field)[0]

    def uint16(self, field: str) -> int:
        return int.from_bytes(self._take(2, field), "little")

    def sint16(self, field: str) -> int:
        return int.from_bytes(self._take(2, field), "little", signed=True)

    def uint32(self, field: str) -> int:
        return int.from_bytes(self._take(4, field), "little")

    def sfloat(self, field: str) -> Number:
        return decode_sfloat(self.uint16(field))

    def float32(self, field: str) -> Number:
        return decode_float(self.uint32(field))

    def date_time(self, field: str) -> DeviceTime:
        """A Bluetooth Date Time (7 bytes); year 0 means unknown, month or day 0 likewise."""
        start = self.offset
        year = self.uint16(f"{field}.year")
        month = self.uint8(f"{field}.month")
        day = self.uint8(f"{field}.day")
        hours = self.uint8(f"{field}.hours")
        minutes = self.uint8(f"{field}.minutes")
        seconds = self.uint8(f"{field}.seconds")
        if year != 0 and not 1582 <= year <= 9999:
            raise DecodeError(
                f"year {year} is outside 1582-9999 (0 means unknown)", field=f"{field}.year", offset=start
            )
        for name, value, top, offset in (
            ("month", month, 12, start + 2),
            ("day", day, 31, start + 3),
            ("hours", hours, 23, start + 4),
            ("minutes", minutes, 59, start + 5),
            ("seconds", seconds, 59, start + 6),
        ):
            if value > top:
                raise DecodeError(f"{name} {value} is out of range 0-{top}", field=f"{field}.{name}", offset=offset)
        return DeviceTime(year or None, month, day, hours, minutes, seconds)

    def expect_end(self) -> None:
        """Refuse trailing bytes: they mean the flags and the payload disagree."""
        if self.offset != len(self.payload):
            raise DecodeError(
                f"{len(self.payload) - self.offset} byte(s) left over after the last field the flags announce",
                field="flags",
                offset=self.offset,
            )
