"""OBX segments to readings: the measurement OBX-3 names, the unit of OBX-6, blood-pressure panels,
and the ``hl7v2-oru`` adapter itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import DecodeError
from ..ieee11073 import Number
from ..readings import DeviceTime, Measured, Reading
from .codes import (
    BP_COMPONENTS,
    BP_REQUIRED,
    CODE_TABLES,
    DISCARD,
    LOINC_CODES,
    MDC_CODES,
    MDC_UNIT_NAMES,
    MDC_UNITS,
    NPU_CODES,
    UNIT_ALIASES,
    UNIT_IF_EMPTY,
    UNITS,
    code_family,
)
from .parsing import Encoding, Segment, encoding_of, quote, split_segments, to_text
from .segments import (
    STATUS_CANNOT_OBTAIN,
    STATUS_NO_RESULT,
    components,
    device_time,
    is_test_data,
    message_type,
    result_status,
    sub_id_parent,
    value_of,
)


def measurement_of(seg: Segment, enc: Encoding) -> str | None:
    """The measurement key OBX-3 names (identifier first, then the alternate identifier), or None."""
    for repetition in range(len(seg.repetitions(3))):
        comps = components(seg, 3, enc, repetition) + [""] * 6
        for code, system in ((comps[0], comps[2]), (comps[3], comps[5])):
            family = code_family(system, code) if code else None
            if family is not None and code in CODE_TABLES[family]:
                return CODE_TABLES[family][code]
    return None


def unit_of(seg: Segment, enc: Encoding, key: str) -> str | None:
    """OBX-6 as the UCUM code the measurement accepts; None when OBX-6 is empty."""
    comps = components(seg, 6, enc) + [""] * 3
    ident, text, system = comps[0], comps[1], comps[2].upper()
    if not ident and not text:
        return None
    candidates: list[str] = []
    if (
        system == "MDC"
        or ident in MDC_UNITS
        or text.upper().startswith("MDC_DIM_")
        or ident.upper().startswith("MDC_DIM_")
    ):
        for c in (MDC_UNITS.get(ident), MDC_UNIT_NAMES.get(text.upper()), MDC_UNIT_NAMES.get(ident.upper())):
            if c:
                candidates.append(c)
    for spelled in (ident, text):
        if spelled:
            candidates += [spelled, UNIT_ALIASES.get(spelled.lower(), "")]
    accepted = UNITS[key]
    for c in candidates:
        if c in accepted:
            return c
    shown = ident or text
    raise DecodeError(
        f"unit {quote(shown)} is not one {key} can be given in ({', '.join(sorted(accepted))})", field=seg.where(6)
    )


@dataclass
class _Result:
    key: str
    number: Number
    unit: str
    time: DeviceTime | None
    obx: Segment


@dataclass
class _Panel:
    first_obx: Segment
    time: DeviceTime | None
    components: dict[str, _Result]
    cannot_obtain: bool = False


def decode_message(payload: bytes) -> list[Reading]:
    """One ORU^R01 message (bytes, MLLP framing allowed) to its readings; DecodeError says what is wrong and where."""
    text = to_text(payload)
    enc = encoding_of(text)
    segments = split_segments(text)
    msh = segments[0]
    kind = message_type(msh, enc)
    if kind[:2] != ["ORU", "R01"]:
        shown = "^".join(kind[:2]) if kind else "nothing"
        raise DecodeError(f"this adapter reads ORU^R01 results; MSH-9 says {quote(shown)}", field="MSH.9")
    return _readings(_results(segments[1:], enc), test_data=is_test_data(msh, enc))


def _results(segments: list[Segment], enc: Encoding) -> list[_Result | _Panel]:
    """The results of the known OBX segments in message order, blood-pressure components grouped in panels."""
    items: list[_Result | _Panel] = []
    panels: dict[tuple[int, str], _Panel] = {}
    obr: Segment | None = None
    for seg in segments:
        if seg.name == "OBR":
            obr = seg
            continue
        if seg.name != "OBX":
            continue  # PID, PV1, ORC, NTE, SPM, ...: nothing a reading needs
        key = measurement_of(seg, enc)
        if key is None:
            continue  # a code this adapter does not know: skipped
        status = result_status(seg, enc)
        if status in STATUS_NO_RESULT:
            continue
        panel: _Panel | None = None
        if key in BP_COMPONENTS:
            group = (obr.ordinal if obr else 0, sub_id_parent(seg, enc))
            panel = panels.get(group)
            if panel is None:
                panel = panels[group] = _Panel(seg, None, {})
                items.append(panel)
        if status == STATUS_CANNOT_OBTAIN:
            if panel is not None:
                panel.cannot_obtain = True
            continue
        number = value_of(seg, enc, key)
        if number is None:
            if panel is not None:
                panel.cannot_obtain = True
            continue
        unit = unit_of(seg, enc, key)
        if unit is None:
            if key in UNIT_IF_EMPTY:
                unit = UNIT_IF_EMPTY[key]
            elif number.is_special:
                unit = UNITS[key][0]  # no value to convert: the canonical unit
            else:
                raise DecodeError(f"{key} needs a unit", field=seg.where(6))
        when = device_time(seg, 14, enc)
        if when is None and obr is not None:
            when = device_time(obr, 7, enc)
        result = _Result(key, number, unit, when, seg)
        if panel is None:
            items.append(result)
            continue
        if key in panel.components:
            first = panel.components[key].obx
            raise DecodeError(
                f"a second {key} in one blood pressure (the first is {first.name}[{first.ordinal}])",
                field=seg.where(3),
            )
        panel.components[key] = result
        if panel.time is None:
            panel.time = when
    return items


def _readings(items: list[_Result | _Panel], *, test_data: bool) -> list[Reading]:
    readings: list[Reading] = []
    for item in items:
        if isinstance(item, _Result):
            reason = DISCARD.get(item.key)
            readings.append(
                Reading(
                    measurement=item.key,
                    value=Measured(item.key, item.number, item.unit),
                    device_time=item.time,
                    test_data=test_data,
                    disposition="discard" if reason else "store",
                    disposition_reason=reason,
                )
            )
            continue
        missing = [c for c in BP_REQUIRED if c not in item.components]
        if missing:
            if item.cannot_obtain:
                continue  # a component could not be obtained: no blood pressure to keep
            raise DecodeError(
                f"a blood pressure needs systolic and diastolic; {' and '.join(missing)} missing in this group",
                field=item.first_obx.where(3),
            )
        readings.append(
            Reading(
                measurement="blood-pressure",
                components=tuple(
                    Measured(c, item.components[c].number, item.components[c].unit)
                    for c in BP_COMPONENTS
                    if c in item.components
                ),
                device_time=item.time,
                test_data=test_data,
            )
        )
    return readings


class Hl7v2OruAdapter:
    """``hl7v2-oru``: an HL7 v2 ORU^R01 message (ER7) from a point-of-care analyser or a device hub."""

    id = "hl7v2-oru"
    description = (
        "HL7 v2 ORU^R01 (ER7 text): IHE PCD-01 OBX with MDC codes and LOINC/NPU-coded lab results "
        "(CRP, INR, HbA1c, glucose, vital signs); units mapped to UCUM; NaN and status X give no value"
    )
    input_kind = "bytes"
    reads: tuple[str, ...] = tuple(
        sorted(
            {*MDC_CODES.values(), *LOINC_CODES.values(), *NPU_CODES.values()} - set(BP_COMPONENTS) | {"blood-pressure"}
        )
    )

    def decode(self, payload: Any) -> list[Reading]:
        return decode_message(payload)
