"""HL7 v2 ORU^R01 results (``hl7v2-oru``) from point-of-care analysers and device hubs.

The payload is one message in ER7 (pipe-and-hat) encoding: segments separated by CR (CR LF and LF
are read too), in UTF-8 or, when that fails, ISO 8859-1; MLLP framing (VT ... FS CR) is removed.
The message is split with python-hl7 (PyPI ``hl7``: separators from MSH-1/MSH-2, segments, fields,
repetitions, components); this module reads the OBR and OBX fields it needs from that structure and
unescapes what it reads itself.

What is read
- MSH-9 must be ORU^R01. MSH-11 (processing id) D (debugging) or T (training) marks every reading
  as test data (the Observations get the HTEST security label).
- Every OBX whose OBX-3 (identifier, or alternate identifier) is a code this adapter knows: IHE
  PCD-01 style MDC codes (``150456^MDC_PULS_OXIM_SAT_O2^MDC``), LOINC (``1988-5^...^LN``) and NPU
  (``NPU19748^...^NPU``; HL7 table 0396 has no NPU entry, so the names NPU and 99NPU, the NPU OIDs,
  and an NPU-shaped code under a local 99xxx system are read as NPU). OBX segments with other codes
  (device hierarchy rows, settings, unknown results) are skipped, and so is every other segment:
  the patient (PID) in particular is never read; the envelope names the patient.
- OBX-2 NM (or SN without a comparator or range), OBX-5 the value, kept as an exact Decimal.
  ``NaN``, ``INF``/``+INF`` and ``-INF`` in OBX-5, or an empty OBX-5 with the IHE PCD null flavour
  NAN, PINF or NINF in OBX-8, give a value that is absent (FHIR ``dataAbsentReason``).
- OBX-6 the unit: UCUM, the usual non-UCUM spellings (``mmHg``, ``bpm``, ``mmol/l``, ``mg/l``,
  ``°C``, ...) and MDC dimension codes (``266016^MDC_DIM_MMHG^MDC``) are mapped to the UCUM code
  the terminology table accepts for the measurement; any other unit is refused.
- OBX-11 status: F, C, P, R (PCD-01 devices send R), S, U and an empty status carry a result; X
  (cannot be obtained) gives no reading; D, W, I, N and O carry no result to store.
- OBX-14 the observation time, else OBR-7 of the OBR above it: HL7 TS ``YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]``.
  With an offset the time is absolute; without one it is the device's local time. Minute precision
  at least: a date alone cannot date a home reading.
- Blood pressure: PCD-01 sends systolic, diastolic and mean as separate OBX under one parent sub-id
  (OBX-4 ``1.0.1.1``, ``1.0.1.2``, ``1.0.1.3`` under ``1.0.1``); they become one blood-pressure panel
  reading. Without dotted sub-ids the components under one OBR form the panel.
- The glucose meter's control-solution result (MDC_CONC_GLU_CONTROL) is never a patient's reading:
  its reading is marked ``discard``.

What is refused (DecodeError; ``field`` names segment and field: ``OBX[3].5`` is field 5 of the third
OBX segment of the message): no MSH, a message that is not ORU^R01, more than one message, a known
code with a value that is not a number (or a comparator, range or several values), a unit that does
not fit the measurement, an unknown result status, an unreadable time, and a blood pressure without
both systolic and diastolic.
Messages say what was wrong and where, and never quote anything outside MSH, OBR and OBX.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import hl7
from hl7.exceptions import HL7Exception

from .errors import DecodeError
from .ieee11073 import Number, SpecialValue
from .readings import DeviceTime, Measured, Reading

# --- codes ---------------------------------------------------------------------------------------
# OBX-3 code -> measurement key of fhir_profiles/measurements.toml. tests/test_hl7v2_adapter.py
# checks every MDC, LOINC and NPU code here against the table; the extra LOINC/NPU rows are codes the
# table does not list but that name the same measurement (noted per row).

MDC_CODES: dict[str, str] = {
    "150021": "systolic",
    "150022": "diastolic",
    "150023": "mean-arterial-pressure",
    "149546": "pulse-rate",
    "149530": "pulse-rate-oximeter",
    "147842": "heart-rate",
    "150456": "spo2",
    "150364": "body-temperature",
    "188736": "body-weight",
    "188740": "body-height",
    "188752": "bmi",
    "151562": "respiratory-rate",
    "160184": "glucose-capillary-whole-blood",
    "160188": "glucose-capillary-plasma",
    "160192": "glucose-venous-whole-blood",
    "160196": "glucose-venous-plasma",
    "160200": "glucose-arterial-whole-blood",
    "160204": "glucose-arterial-plasma",
    "160364": "glucose-undetermined-whole-blood",
    "160368": "glucose-undetermined-plasma",
    "160208": "glucose-control-solution",
    "160220": "hba1c",
    "160260": "inr",
    "152584": "peak-expiratory-flow",
    "152586": "fev1",
    "188928": "fvc",
}

LOINC_CODES: dict[str, str] = {
    "8480-6": "systolic",
    "8462-4": "diastolic",
    "8478-0": "mean-arterial-pressure",
    "8867-4": "pulse-rate",  # "Heart rate", method not stated: the table's home pulse rate
    "2708-6": "spo2",
    "59408-5": "spo2",  # Oxygen saturation in Arterial blood by Pulse oximetry (the table's note)
    "8310-5": "body-temperature",
    "29463-7": "body-weight",
    "8302-2": "body-height",
    "39156-5": "bmi",
    "9279-1": "respiratory-rate",
    "14743-9": "glucose-capillary-whole-blood",
    "41653-7": "glucose-capillary-whole-blood",  # the same in mass units (Glucose [Mass/volume] in Capillary blood by Glucometer)
    "15074-8": "glucose-undetermined-whole-blood",
    "2339-0": "glucose-undetermined-whole-blood",  # Glucose [Mass/volume] in Blood
    "14749-6": "glucose-undetermined-plasma",
    "2345-7": "glucose-undetermined-plasma",  # Glucose [Mass/volume] in Serum or Plasma
    "59261-8": "hba1c",
    "4548-4": "hba1c",  # Hemoglobin A1c/Hemoglobin.total in Blood, reported in NGSP %
    "46418-0": "inr",
    "34714-6": "inr",  # INR in Blood by Coagulation assay (the table's note)
    "1988-5": "crp",
    "19935-6": "peak-expiratory-flow",
    "20150-9": "fev1",
    "19870-5": "fvc",
}

NPU_CODES: dict[str, str] = {
    "DNK05472": "systolic",
    "DNK05473": "diastolic",
    "NPU57947": "systolic",  # DK Core NPUBasicObservation (the table's note)
    "NPU57948": "diastolic",
    "NPU21692": "pulse-rate",
    "NPU27280": "spo2",
    "NPU08676": "body-temperature",
    "NPU03804": "body-weight",
    "NPU03794": "body-height",
    "NPU27281": "bmi",
    "NPU02187": "glucose-undetermined-whole-blood",
    "NPU22089": "glucose-capillary-plasma",
    "NPU21531": "glucose-venous-plasma",
    "NPU27300": "hba1c",
    "NPU01685": "inr",
    "NPU19748": "crp",
}

BP_COMPONENTS = ("systolic", "diastolic", "mean-arterial-pressure")
BP_REQUIRED = ("systolic", "diastolic")
DISCARD = {"glucose-control-solution": "a glucose meter's control-solution test, not a patient's reading"}

_LOINC_SYSTEMS = {"LN", "LOINC", "2.16.840.1.113883.6.1"}
_MDC_SYSTEMS = {"MDC", "2.16.840.1.113883.6.24"}
_NPU_SYSTEMS = {"NPU", "99NPU", "1.2.208.176.2.1", "1.2.208.176.9.1"}
_NPU_CODE = re.compile(r"^(NPU|DNK)\d{5}$")

# --- units ---------------------------------------------------------------------------------------
# the UCUM codes the terminology table converts for each measurement, its canonical unit first
# (checked against fhir_profiles/measurements.toml by the tests)
_GLUCOSE_UNITS = ("mmol/L", "mg/dL", "g/L", "kg/L", "mol/L")
_BP_UNITS = ("mm[Hg]", "kPa")
_RATE_UNITS = ("/min", "{beat}/min")
UNITS: dict[str, tuple[str, ...]] = {
    "systolic": _BP_UNITS,
    "diastolic": _BP_UNITS,
    "mean-arterial-pressure": _BP_UNITS,
    "pulse-rate": _RATE_UNITS,
    "pulse-rate-oximeter": _RATE_UNITS,
    "heart-rate": _RATE_UNITS,
    "spo2": ("%", "1", "{fraction}"),
    "body-temperature": ("Cel", "[degF]"),
    "body-weight": ("kg", "[lb_av]", "g"),
    "body-height": ("cm", "m", "[in_i]"),
    "bmi": ("kg/m2",),
    "respiratory-rate": ("/min", "{Breaths}/min"),
    "hba1c": ("mmol/mol", "%"),
    "inr": ("{INR}", "1"),
    "crp": ("mg/L", "mg/dL"),
    "peak-expiratory-flow": ("L/min", "L/s"),
    "fev1": ("L", "mL"),
    "fvc": ("L", "mL"),
    **{
        key: _GLUCOSE_UNITS
        for key in sorted({*MDC_CODES.values(), *LOINC_CODES.values(), *NPU_CODES.values()})
        if key.startswith("glucose-")
    },
}
# the unit a dimensionless result may leave out
UNIT_IF_EMPTY = {"inr": "{INR}"}

# non-UCUM spellings, lower-cased, -> UCUM
UNIT_ALIASES: dict[str, str] = {
    "mmhg": "mm[Hg]",
    "mm hg": "mm[Hg]",
    "mm[hg]": "mm[Hg]",
    "kpa": "kPa",
    "/min": "/min",
    "1/min": "/min",
    "min-1": "/min",
    "bpm": "/min",
    "beats/min": "/min",
    "beat/min": "/min",
    "{beat}/min": "/min",
    "{beats}/min": "/min",
    "breaths/min": "/min",
    "{breaths}/min": "/min",
    "br/min": "/min",
    "%": "%",
    "percent": "%",
    "1": "1",
    "{fraction}": "{fraction}",
    "cel": "Cel",
    "°c": "Cel",
    "ºc": "Cel",
    "degc": "Cel",
    "deg c": "Cel",
    "c": "Cel",
    "celsius": "Cel",
    "[degf]": "[degF]",
    "°f": "[degF]",
    "ºf": "[degF]",
    "degf": "[degF]",
    "deg f": "[degF]",
    "f": "[degF]",
    "fahrenheit": "[degF]",
    "kg": "kg",
    "g": "g",
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "[lb_av]": "[lb_av]",
    "cm": "cm",
    "m": "m",
    "in": "[in_i]",
    "inch": "[in_i]",
    "[in_i]": "[in_i]",
    "kg/m2": "kg/m2",
    "kg/m^2": "kg/m2",
    "kg/m²": "kg/m2",
    "kg.m-2": "kg/m2",
    "mmol/l": "mmol/L",
    "mg/dl": "mg/dL",
    "g/l": "g/L",
    "kg/l": "kg/L",
    "mol/l": "mol/L",
    "mmol/mol": "mmol/mol",
    "mg/l": "mg/L",
    "{inr}": "{INR}",
    "inr": "{INR}",
    "l/min": "L/min",
    "l/s": "L/s",
    "l": "L",
    "ml": "mL",
}
# MDC dimension codes (partition 4: 262144 + term code; IEEE 11073-10101) and reference ids -> UCUM
MDC_UNITS: dict[str, str] = {
    "262656": "1",  # MDC_DIM_DIMLESS
    "262688": "%",  # MDC_DIM_PERCENT
    "263424": "m",  # MDC_DIM_X_M
    "263441": "cm",  # MDC_DIM_CENTI_M
    "263520": "[in_i]",  # MDC_DIM_INCH
    "263744": "L",  # MDC_DIM_X_L
    "263762": "mL",  # MDC_DIM_MILLI_L
    "263872": "g",  # MDC_DIM_X_G
    "263875": "kg",  # MDC_DIM_KILO_G
    "263904": "[lb_av]",  # MDC_DIM_LB
    "264096": "kg/m2",  # MDC_DIM_KG_PER_M_SQ
    "264274": "mg/dL",  # MDC_DIM_MILLI_G_PER_DL
    "264864": "/min",  # MDC_DIM_BEAT_PER_MIN
    "264928": "/min",  # MDC_DIM_RESP_PER_MIN
    "265216": "L/min",  # MDC_DIM_X_L_PER_MIN
    "265987": "kPa",  # MDC_DIM_KILO_PASCAL
    "266016": "mm[Hg]",  # MDC_DIM_MMHG
    "266560": "[degF]",  # MDC_DIM_FAHR
    "266866": "mmol/L",  # MDC_DIM_MILLI_MOLE_PER_L
    "268192": "Cel",  # MDC_DIM_DEGC
    "268752": "{INR}",  # MDC_DIM_INR
}
MDC_UNIT_NAMES: dict[str, str] = {
    "MDC_DIM_DIMLESS": "1",
    "MDC_DIM_PERCENT": "%",
    "MDC_DIM_X_M": "m",
    "MDC_DIM_M": "m",
    "MDC_DIM_CENTI_M": "cm",
    "MDC_DIM_INCH": "[in_i]",
    "MDC_DIM_X_L": "L",
    "MDC_DIM_L": "L",
    "MDC_DIM_MILLI_L": "mL",
    "MDC_DIM_X_G": "g",
    "MDC_DIM_G": "g",
    "MDC_DIM_KILO_G": "kg",
    "MDC_DIM_LB": "[lb_av]",
    "MDC_DIM_KG_PER_M_SQ": "kg/m2",
    "MDC_DIM_MILLI_G_PER_DL": "mg/dL",
    "MDC_DIM_BEAT_PER_MIN": "/min",
    "MDC_DIM_RESP_PER_MIN": "/min",
    "MDC_DIM_X_L_PER_MIN": "L/min",
    "MDC_DIM_L_PER_MIN": "L/min",
    "MDC_DIM_KILO_PASCAL": "kPa",
    "MDC_DIM_MMHG": "mm[Hg]",
    "MDC_DIM_FAHR": "[degF]",
    "MDC_DIM_MILLI_MOLE_PER_L": "mmol/L",
    "MDC_DIM_DEGC": "Cel",
    "MDC_DIM_INR": "{INR}",
}

# --- statuses and values -------------------------------------------------------------------------
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
_MAX_LENGTH = 1_000_000


def _quote(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- reading the message -------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    field: str
    component: str
    repetition: str
    escape: str
    subcomponent: str


@dataclass(frozen=True)
class Segment:
    """One segment: its name, its ordinal among segments of that name (1-based), its fields.

    ``fields[n]`` is field n (HL7 numbering, MSH too) as a list of repetitions, each a list of
    components, each its first subcomponent, still escaped.
    """

    name: str
    ordinal: int
    fields: dict[int, list[list[str]]]

    def where(self, number: int) -> str:
        return f"{self.name}[{self.ordinal}].{number}" if self.name != "MSH" else f"MSH.{number}"

    def repetitions(self, number: int) -> list[list[str]]:
        return self.fields.get(number, [])


def to_text(payload: bytes) -> str:
    """The message text: MLLP framing removed, UTF-8 or else ISO 8859-1, segments separated by CR."""
    if isinstance(payload, str):  # tolerated for callers that already decoded
        text = payload
    else:
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise DecodeError(f"an HL7 v2 message is bytes, got {type(payload).__name__}", field="payload")
        raw = bytes(payload)
        if len(raw) > _MAX_LENGTH:
            raise DecodeError(
                f"a message of {len(raw)} bytes is larger than the {_MAX_LENGTH} this adapter reads", field="payload"
            )
        raw = raw.strip(b" \t\r\n\x00").removeprefix(b"\x0b").removesuffix(b"\x1c").strip(b" \t\r\n")
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")


def _encoding(text: str) -> Encoding:
    if not text.startswith("MSH"):
        raise DecodeError("no MSH segment: an HL7 v2 message starts with MSH", field="MSH", offset=0)
    if len(text) < 8:
        raise DecodeError("MSH is too short to hold its encoding characters", field="MSH.2", offset=3)
    field = text[3]
    end = text.find(field, 4)
    chars = text[4:end] if end != -1 else text[4:]
    # four encoding characters; HL7 2.7 and later may add a fifth, the truncation character
    if (
        len(chars) not in (4, 5)
        or len(set(field + chars)) != len(chars) + 1
        or any(c.isalnum() or c in "\r " for c in field + chars)
    ):
        raise DecodeError(
            f"MSH-1 and MSH-2 must be distinct separator characters (|^~\\\\& or the like), got {_quote(field + chars)}",
            field="MSH.2",
            offset=3,
        )
    return Encoding(field, chars[0], chars[1], chars[2], chars[3])


def _repetitions(field: Any) -> list[list[str]]:
    """python-hl7 nests only where a separator occurs: a field is a list of repetitions, each a leaf
    string or a list of components, each a leaf string or a list of subcomponents."""
    out: list[list[str]] = []
    for rep in field:
        if isinstance(rep, str):
            out.append([rep])
            continue
        out.append([comp if isinstance(comp, str) else (str(comp[0]) if len(comp) else "") for comp in rep])
    return out


def _segments(text: str) -> list[Segment]:
    """Split the message with python-hl7 (separators from MSH-1/MSH-2, segments, fields, repetitions, components)."""
    try:
        message = hl7.parse(text)
    except (HL7Exception, ValueError, IndexError, TypeError) as exc:  # what the library raises on input it cannot split
        raise DecodeError(
            f"the message cannot be split as HL7 v2 ({type(exc).__name__})", field="MSH", offset=0
        ) from None
    counts: dict[str, int] = {}
    out = []
    for seg in message:
        name = str(seg[0]) if len(seg) else ""
        counts[name] = counts.get(name, 0) + 1
        fields = {number: _repetitions(seg[number]) for number in range(1, len(seg))}
        out.append(Segment(name, counts[name], fields))
    if counts.get("MSH", 0) > 1:
        raise DecodeError("more than one message (a second MSH): send one message per envelope", field="MSH[2]")
    return out


_ESCAPES = {"F": "field", "S": "component", "T": "subcomponent", "R": "repetition", "E": "escape"}


def _unescape(text: str, enc: Encoding) -> str:
    """HL7 escape sequences \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ back to their characters; any other
    escape (highlighting, formatting, hex, character sets) dropped. Done here rather than with
    python-hl7's ``unescape``, which repeats formatting escapes such as \\.spNNN\\ NNN times unbounded."""
    if enc.escape not in text:
        return text
    e = re.escape(enc.escape)
    return re.sub(
        f"{e}([^{e}]*){e}", lambda m: getattr(enc, _ESCAPES[m.group(1)]) if m.group(1) in _ESCAPES else "", text
    )


def _components(seg: Segment, number: int, enc: Encoding, repetition: int = 0) -> list[str]:
    """The components of one repetition of a field, unescaped and stripped; [] when absent."""
    reps = seg.repetitions(number)
    if repetition >= len(reps):
        return []
    return [_unescape(c, enc).strip() for c in reps[repetition]]


def _component(seg: Segment, number: int, enc: Encoding, index: int = 1) -> str:
    comps = _components(seg, number, enc)
    return comps[index - 1] if index <= len(comps) else ""


# --- fields --------------------------------------------------------------------------------------


def _family(system: str, code: str) -> str | None:
    s = system.strip().upper()
    if s in _LOINC_SYSTEMS:
        return "LN"
    if s in _MDC_SYSTEMS:
        return "MDC"
    if s in _NPU_SYSTEMS or ((not s or s.startswith("99") or s == "L") and _NPU_CODE.match(code)):
        return "NPU"
    return None


def measurement_of(seg: Segment, enc: Encoding) -> str | None:
    """The measurement key OBX-3 names (identifier first, then the alternate identifier), or None."""
    tables = {"LN": LOINC_CODES, "MDC": MDC_CODES, "NPU": NPU_CODES}
    for repetition in range(len(seg.repetitions(3))):
        comps = _components(seg, 3, enc, repetition) + [""] * 6
        for code, system in ((comps[0], comps[2]), (comps[3], comps[5])):
            family = _family(system, code) if code else None
            if family is not None and code in tables[family]:
                return tables[family][code]
    return None


def unit_of(seg: Segment, enc: Encoding, key: str) -> str | None:
    """OBX-6 as the UCUM code the measurement accepts; None when OBX-6 is empty."""
    comps = _components(seg, 6, enc) + [""] * 3
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
        f"unit {_quote(shown)} is not one {key} can be given in ({', '.join(sorted(accepted))})", field=seg.where(6)
    )


def device_time(seg: Segment, number: int, enc: Encoding) -> DeviceTime | None:
    """An HL7 TS/DTM field as the device's time: with its offset when it states one; None when empty."""
    text = _component(seg, number, enc)
    if not text:
        return None
    m = _TS.match(text)
    if m is None:
        raise DecodeError(
            f"{_quote(text)} is not an HL7 time YYYYMMDDHHMM[SS[.S]][+/-ZZZZ] (at least minutes)",
            field=seg.where(number),
        )
    year, month, day, hours, minutes = (int(m.group(i)) for i in range(1, 6))
    seconds = int(m.group(6) or 0)
    try:
        datetime(year, month, day, hours, minutes, seconds)
    except ValueError:
        raise DecodeError(f"{_quote(text)} is not a date and time that exists", field=seg.where(number)) from None
    offset = None
    if m.group(7):
        sign = -1 if m.group(7)[0] == "-" else 1
        oh, om = int(m.group(7)[1:3]), int(m.group(7)[3:5])
        if oh > 14 or om > 59 or oh * 60 + om > 14 * 60:
            raise DecodeError(f"{_quote(m.group(7))} is not a UTC offset", field=seg.where(number))
        offset = sign * timedelta(hours=oh, minutes=om)
    return DeviceTime(year, month, day, hours, minutes, seconds, utc_offset=offset)


def _number(text: str, seg: Segment) -> Number:
    special = SPECIAL_TEXT.get(text.upper())
    if special is not None:
        return Number(special=special)
    if not _NUMBER.match(text) or len(text) > _MAX_DIGITS:
        raise DecodeError(f"{_quote(text)} is not a number", field=seg.where(5))
    return Number(Decimal(text))


def value_of(seg: Segment, enc: Encoding, key: str) -> Number | None:
    """OBX-5 as a Number (a special value for NaN/INF), or None when the OBX carries no value to keep."""
    value_type = _component(seg, 2, enc).upper()
    count = len(seg.repetitions(5))
    if count > 1:
        raise DecodeError(f"{count} values (repetitions) where {key} takes one", field=seg.where(5))
    comps = _components(seg, 5, enc)
    shown = enc.component.join(comps)
    if not any(comps):
        flags = {c.upper() for r in range(len(seg.repetitions(8))) for c in _components(seg, 8, enc, r)}
        for flavour, special in NULL_FLAVOUR_SPECIAL.items():
            if flavour in flags:
                return Number(special=special)
        if flags & NULL_FLAVOUR_ABSENT or _component(seg, 11, enc).upper() == "U":
            return None
        raise DecodeError(f"{key} has no value; send OBX-11 X when it could not be obtained", field=seg.where(5))
    if value_type == "NM" or (value_type == "" and len(comps) == 1):
        if len(comps) > 1:
            raise DecodeError(f"a numeric (NM) value has no components, got {_quote(shown)}", field=seg.where(5))
        return _number(comps[0], seg)
    if value_type == "SN":
        comps += [""] * 4
        comparator, first, separator, second = comps[:4]
        if comparator not in ("", "=") or separator or second:
            raise DecodeError(
                f"a value with a comparator or range ({_quote(shown)}) cannot be kept as a number", field=seg.where(5)
            )
        return _number(first, seg)
    raise DecodeError(f"value type {_quote(value_type)}: a {key} result is numeric (NM or SN)", field=seg.where(2))


# --- the adapter ---------------------------------------------------------------------------------


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


def _sub_id_parent(seg: Segment, enc: Encoding) -> str:
    parts = _component(seg, 4, enc).split(".")
    return ".".join(parts[:-1]) if len(parts) >= 2 else ""


def decode_message(payload: bytes) -> list[Reading]:
    text = to_text(payload)
    enc = _encoding(text)
    segments = _segments(text)
    msh = segments[0]
    message_type = [c.upper() for c in _components(msh, 9, enc)]
    if message_type[:2] != ["ORU", "R01"]:
        shown = "^".join(message_type[:2]) if message_type else "nothing"
        raise DecodeError(f"this adapter reads ORU^R01 results; MSH-9 says {_quote(shown)}", field="MSH.9")
    test_data = _component(msh, 11, enc).upper() in ("D", "T")

    items: list[_Result | _Panel] = []
    panels: dict[tuple[int, str], _Panel] = {}
    obr: Segment | None = None
    for seg in segments[1:]:
        if seg.name == "OBR":
            obr = seg
            continue
        if seg.name != "OBX":
            continue  # PID, PV1, ORC, NTE, SPM, ...: nothing a reading needs
        key = measurement_of(seg, enc)
        if key is None:
            continue  # a code this adapter does not know: skipped
        status = _component(seg, 11, enc).upper()
        if status not in STATUS_RESULT | STATUS_NO_RESULT | {STATUS_CANNOT_OBTAIN}:
            raise DecodeError(f"unknown result status {_quote(status)} (HL7 table 0085)", field=seg.where(11))
        if status in STATUS_NO_RESULT:
            continue
        panel: _Panel | None = None
        if key in BP_COMPONENTS:
            group = (obr.ordinal if obr else 0, _sub_id_parent(seg, enc))
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
                f"a second {key} in one blood pressure (the first is {first.name}[{first.ordinal}])", field=seg.where(3)
            )
        panel.components[key] = result
        if panel.time is None:
            panel.time = when

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
    reads = tuple(
        sorted(
            {*MDC_CODES.values(), *LOINC_CODES.values(), *NPU_CODES.values()} - set(BP_COMPONENTS) | {"blood-pressure"}
        )
    )

    def decode(self, payload: Any) -> list[Reading]:
        return decode_message(payload)
