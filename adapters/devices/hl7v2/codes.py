"""The code and unit tables of the HL7 v2 adapter: OBX-3 codes to measurements, OBX-6 units to UCUM."""

from __future__ import annotations

import re

# --- codes ---------------------------------------------------------------------------------------
# OBX-3 code -> measurement key of fhir_profiles/measurements.toml. tests/unit/adapters/test_hl7v2.py
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
    # the same in mass units (Glucose [Mass/volume] in Capillary blood by Glucometer)
    "41653-7": "glucose-capillary-whole-blood",
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


def code_family(system: str, code: str) -> str | None:
    """The code table (``LN``, ``MDC``, ``NPU``) a coding system names, or None; a code shaped like
    an NPU code counts as NPU under a local system too (HL7 table 0396 has no NPU entry)."""
    s = system.strip().upper()
    if s in _LOINC_SYSTEMS:
        return "LN"
    if s in _MDC_SYSTEMS:
        return "MDC"
    if s in _NPU_SYSTEMS or ((not s or s.startswith("99") or s == "L") and _NPU_CODE.match(code)):
        return "NPU"
    return None


CODE_TABLES = {"LN": LOINC_CODES, "MDC": MDC_CODES, "NPU": NPU_CODES}

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
