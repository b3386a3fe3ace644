"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) numbers.

A device sends a mantissa and a base-10 exponent; the exponent is the precision the device
measured with, so ``0xF014`` is ``2.0`` (mantissa 20, exponent -1) and not ``2``. Values are
decoded to :class:`decimal.Decimal` built from the integer mantissa and exponent, which keeps that
precision exactly. Five mantissas are reserved for special values that are never numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal


class SpecialValue(enum.Enum):
    """The five reserved mantissas. ``data_absent_reason`` is the FHIR code the PHD IG maps each to."""

    NAN = ("NaN", "not-a-number")
    NRES = ("NRes", "error")
    POSITIVE_INFINITY = ("+INF", "positive-infinity")
    NEGATIVE_INFINITY = ("-INF", "negative-infinity")
    RESERVED = ("reserved", "error")

    def __init__(self, label: str, data_absent_reason: str) -> None:
        self.label = label
        self.data_absent_reason = data_absent_reason


@dataclass(frozen=True, slots=True)
class Number:
    """A decoded 11073 number: either a ``value`` or a ``special`` marker, never both."""

    value: Decimal | None = None
    special: SpecialValue | None = None

    @property
    def is_special(self) -> bool:
        return self.special is not None


_SFLOAT_SPECIALS = {
    0x07FF: SpecialValue.NAN,
    0x0800: SpecialValue.NRES,
    0x07FE: SpecialValue.POSITIVE_INFINITY,
    0x0802: SpecialValue.NEGATIVE_INFINITY,
    0x0801: SpecialValue.RESERVED,
}

_FLOAT_SPECIALS = {
    0x7FFFFF: SpecialValue.NAN,
    0x800000: SpecialValue.NRES,
    0x7FFFFE: SpecialValue.POSITIVE_INFINITY,
    0x800002: SpecialValue.NEGATIVE_INFINITY,
    0x800001: SpecialValue.RESERVED,
}


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def decode_sfloat(raw: int) -> Number:
    """Decode a 16-bit SFLOAT given as an integer (as read little-endian from the wire)."""
    if not 0 <= raw <= 0xFFFF:
        raise ValueError(f"SFLOAT must be a 16-bit value, got {raw:#x}")
    mantissa_raw = raw & 0x0FFF
    if mantissa_raw in _SFLOAT_SPECIALS:
        return Number(special=_SFLOAT_SPECIALS[mantissa_raw])
    return Number(value=_decimal(_signed(mantissa_raw, 12), _signed(raw >> 12, 4)))


def decode_float(raw: int) -> Number:
    """Decode a 32-bit FLOAT given as an integer (as read little-endian from the wire)."""
    if not 0 <= raw <= 0xFFFFFFFF:
        raise ValueError(f"FLOAT must be a 32-bit value, got {raw:#x}")
    mantissa_raw = raw & 0xFFFFFF
    if mantissa_raw in _FLOAT_SPECIALS:
        return Number(special=_FLOAT_SPECIALS[mantissa_raw])
    return Number(value=_decimal(_signed(mantissa_raw, 24), _signed(raw >> 24, 8)))


def _decimal(mantissa: int, exponent: int) -> Decimal:
    sign = 1 if mantissa < 0 else 0
    digits = tuple(int(d) for d in str(abs(mantissa)))
    return Decimal((sign, digits, exponent))


def encode_sfloat(value: Decimal) -> int:
    """Encode a Decimal as SFLOAT, keeping its exponent (for making test and demo payloads)."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} has no finite SFLOAT encoding")
    mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if not -8 <= exponent <= 7 or not -2045 <= mantissa <= 2045:  # 2046, 2047 and -2046..-2048 are the specials
        raise ValueError(f"{value} does not fit an SFLOAT (mantissa {mantissa}, exponent {exponent})")
    return ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)


def encode_sfloat_special(special: SpecialValue) -> int:
    for raw, member in _SFLOAT_SPECIALS.items():
        if member is special:
            return raw
    raise ValueError(special)  # pragma: no cover - every member has a code
