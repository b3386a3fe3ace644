"""Reading fields of MSH, OBR and OBX segments: components, times, values and result statuses.

Every accessor unescapes what it reads. Only MSH, OBR and OBX are ever read: the patient (PID)
in particular never is; the envelope names the patient.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

from ..errors import DecodeError
from ..ieee11073 import Number, SpecialValue
from ..readings import DeviceTime
from .parsing import Encoding, Segment, quote, unescape

# OBX-11 result statuses (HL7 table 0085)
STATUS_RESULT = {"", "F", "C", "P", "R", "S", "U"}
STATUS_CANNOT_OBTAIN = "X"
STATUS_NO_RESULT = {"D", "W", "I", "N", "O"}
SPECIAL_TEXT = {
    "NAN": SpecialValue.NAN,
    "INF": SpecialValue.POSITIVE_INFINITY,
    "+INF": SpecialValue.POSITIVE_INFINITY,
    "INFINITY": SpecialValue.POSITIVE_INFINITY,
    "+INFINITY": SpecialValue.POSITIVE_INFINITY,
    "-INF": SpecialValue.NEGATIVE_INFINITY,
    "-INFINITY": SpecialValue.NEGATIVE_INFINITY,
}
# IHE PCD null flavours in OBX-8 (abnormal flags) for a missing value
NULL_FLAVOUR_SPECIAL = {
    "NAN": SpecialValue.NAN,
    "PINF": SpecialValue.POSITIVE_INFINITY,
    "NINF": SpecialValue.NEGATIVE_INFINITY,
}
NULL_FLAVOUR_ABSENT = {"NI", "NA", "NAV", "OFF", "MSK", "OTH"}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_MAX_DIGITS = 20
_TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")


def components(seg: Segment, number: int, enc: Encoding, repetition: int = 0) -> list[str]:
    """The components of one repetition of a field, unescaped and stripped; [] when absent."""
    reps = seg.repetitions(number)
    if repetition >= len(reps):
        return []
    return [unescape(c, enc).strip() for c in reps[repetition]]


def component(seg: Segment, number: int, enc: Encoding, index: int = 1) -> str:
    """One component (1-based) of the first repetition of a field, unescaped and stripped; "" when absent."""
    comps = components(seg, number, enc)
    return comps[index - 1] if index <= len(comps) else ""


def message_type(msh: Segment, enc: Encoding) -> list[str]:
    """MSH-9, upper-cased components (``["ORU", "R01", ...]``)."""
    return [c.upper() for c in components(msh, 9, enc)]


def is_test_data(msh: Segment, enc: Encoding) -> bool:
    """MSH-11 (processing id) D (debugging) or T (training)."""
    return component(msh, 11, enc).upper() in ("D", "T")


def result_status(obx: Segment, enc: Encoding) -> str:
    """OBX-11, upper-cased; DecodeError for a status outside HL7 table 0085."""
    status = component(obx, 11, enc).upper()
    if status not in STATUS_RESULT | STATUS_NO_RESULT | {STATUS_CANNOT_OBTAIN}:
        raise DecodeError(f"unknown result status {quote(status)} (HL7 table 0085)", field=obx.where(11))
    return status


def sub_id_parent(obx: Segment, enc: Encoding) -> str:
    """The parent of a dotted OBX-4 sub-id (``1.0.1`` for ``1.0.1.2``); "" without one."""
    parts = component(obx, 4, enc).split(".")
    return ".".join(parts[:-1]) if len(parts) >= 2 else ""


def device_time(seg: Segment, number: int, enc: Encoding) -> DeviceTime | None:
    """An HL7 TS/DTM field as the device's time: with its offset when it states one; None when empty."""
    text = component(seg, number, enc)
    if not text:
        return None
    m = _TS.match(text)
    if m is None:
        raise DecodeError(
            f"{quote(text)} is not an HL7 time YYYYMMDDHHMM[SS[.S]][+/-ZZZZ] (at least minutes)",
            field=seg.where(number),
        )
    year, month, day, hours, minutes = (int(m.group(i)) for i in range(1, 6))
    seconds = int(m.group(6) or 0)
    try:
        datetime(year, month, day, hours, minutes, seconds)
    except ValueError:
        raise DecodeError(f"{quote(text)} is not a date and time that exists", field=seg.where(number)) from None
    offset = None
    if m.group(7):
        sign = -1 if m.group(7)[0] == "-" else 1
        oh, om = int(m.group(7)[1:3]), int(m.group(7)[3:5])
        if oh > 14 or om > 59 or oh * 60 + om > 14 * 60:
            raise DecodeError(f"{quote(m.group(7))} is not a UTC offset", field=seg.where(number))
        offset = sign * timedelta(hours=oh, minutes=om)
    return DeviceTime(year, month, day, hours, minutes, seconds, utc_offset=offset)


def _number(text: str, seg: Segment) -> Number:
    special = SPECIAL_TEXT.get(text.upper())
    if special is not None:
        return Number(special=special)
    if not _NUMBER.match(text) or len(text) > _MAX_DIGITS:
        raise DecodeError(f"{quote(text)} is not a number", field=seg.where(5))
    return Number(Decimal(text))


def value_of(seg: Segment, enc: Encoding, key: str) -> Number | None:
    """OBX-5 as a Number (a special value for NaN/INF), or None when the OBX carries no value to keep."""
    value_type = component(seg, 2, enc).upper()
    count = len(seg.repetitions(5))
    if count > 1:
        raise DecodeError(f"{count} values (repetitions) where {key} takes one", field=seg.where(5))
    comps = components(seg, 5, enc)
    shown = enc.component.join(comps)
    if not any(comps):
        flags = {c.upper() for r in range(len(seg.repetitions(8))) for c in components(seg, 8, enc, r)}
        for flavour, special in NULL_FLAVOUR_SPECIAL.items():
            if flavour in flags:
                return Number(special=special)
        if flags & NULL_FLAVOUR_ABSENT or component(seg, 11, enc).upper() == "U":
            return None
        raise DecodeError(f"{key} has no value; send OBX-11 X when it could not be obtained", field=seg.where(5))
    if value_type == "NM" or (value_type == "" and len(comps) == 1):
        if len(comps) > 1:
            raise DecodeError(f"a numeric (NM) value has no components, got {quote(shown)}", field=seg.where(5))
        return _number(comps[0], seg)
    if value_type == "SN":
        comps += [""] * 4
        comparator, first, separator, second = comps[:4]
        if comparator not in ("", "=") or separator or second:
            raise DecodeError(
                f"a value with a comparator or range ({quote(shown)}) cannot be kept as a number", field=seg.where(5)
            )
        return _number(first, seg)
    raise DecodeError(f"value type {quote(value_type)}: a {key} result is numeric (NM or SN)", field=seg.where(2))
