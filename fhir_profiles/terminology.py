"""Codes and units of the home measurements: MDC, LOINC and UCUM.

Sources: ISO/IEEE 11073-10101 nomenclature as used by the HL7 PHD IG 2.0.0 examples
(compound-numeric-blood-pressure, bpm-status); LOINC codes required by the FHIR R4 vital-signs
profiles (85354-9 panel, 8480-6, 8462-4, 8867-4); 8478-0 (mean blood pressure) from LOINC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CATEGORY = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
ASN1_TO_HL7 = "http://terminology.hl7.org/CodeSystem/ASN1ToHL7"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
SECURITY_LABEL = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str | None = None

    def as_fhir(self) -> dict[str, str]:
        out = {"system": self.system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out


@dataclass(frozen=True)
class Measurement:
    """One kind of measurement: its codings, text, canonical UCUM unit and exact conversions to it."""

    key: str
    text: str
    codings: tuple[Coding, ...]
    unit: str | None = None
    unit_display: str | None = None
    # unit code as a device may send it -> factor to the canonical unit
    conversions: dict[str, Decimal] = field(default_factory=dict)
    vital_signs: bool = True
    components: tuple[str, ...] = ()
    # physiologic limits in the canonical unit: a value outside them is a device or upload fault
    limits: tuple[Decimal, Decimal] | None = None

    @property
    def mdc_code(self) -> str:
        return next(c.code for c in self.codings if c.system == MDC)

    def code_fhir(self) -> dict[str, object]:
        return {"coding": [c.as_fhir() for c in self.codings], "text": self.text}


# UCUM defines m[Hg] as 133.3220 kPa, so 1 mm[Hg] = 133.3220 Pa exactly and 1 kPa = 1000/133.3220 mm[Hg].
KPA_TO_MMHG = Decimal(1000) / Decimal("133.3220")

MEASUREMENTS: dict[str, Measurement] = {
    m.key: m
    for m in (
        Measurement(
            key="blood-pressure",
            text="Blood pressure",
            codings=(Coding(MDC, "150020", "MDC_PRESS_BLD_NONINV"), Coding(LOINC, "85354-9", "Blood pressure panel with all children optional")),
            components=("systolic", "diastolic", "mean-arterial-pressure"),
        ),
        Measurement(
            key="systolic",
            text="Systolic blood pressure",
            codings=(Coding(MDC, "150021", "MDC_PRESS_BLD_NONINV_SYS"), Coding(LOINC, "8480-6", "Systolic blood pressure")),
            unit="mm[Hg]",
            unit_display="mmHg",
            conversions={"mm[Hg]": Decimal(1), "kPa": KPA_TO_MMHG},
            limits=(Decimal("20"), Decimal("300")),
        ),
        Measurement(
            key="diastolic",
            text="Diastolic blood pressure",
            codings=(Coding(MDC, "150022", "MDC_PRESS_BLD_NONINV_DIA"), Coding(LOINC, "8462-4", "Diastolic blood pressure")),
            unit="mm[Hg]",
            unit_display="mmHg",
            conversions={"mm[Hg]": Decimal(1), "kPa": KPA_TO_MMHG},
            limits=(Decimal("10"), Decimal("250")),
        ),
        Measurement(
            key="mean-arterial-pressure",
            text="Mean blood pressure",
            codings=(Coding(MDC, "150023", "MDC_PRESS_BLD_NONINV_MEAN"), Coding(LOINC, "8478-0", "Mean blood pressure")),
            unit="mm[Hg]",
            unit_display="mmHg",
            conversions={"mm[Hg]": Decimal(1), "kPa": KPA_TO_MMHG},
            limits=(Decimal("10"), Decimal("280")),
        ),
        Measurement(
            key="pulse-rate",
            text="Pulse rate",
            codings=(Coding(MDC, "149546", "MDC_PULS_RATE_NONINV"), Coding(LOINC, "8867-4", "Heart rate")),
            unit="/min",
            unit_display="beats/minute",
            conversions={"/min": Decimal(1)},
            limits=(Decimal("20"), Decimal("300")),
        ),
        Measurement(
            key="blood-pressure-status",
            text="Blood pressure measurement status",
            codings=(Coding(MDC, "8410608", "MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS"),),
            vital_signs=False,
        ),
    )
}

# The status observation that carries a measurement's status bits.
STATUS_MEASUREMENT_OF = {"blood-pressure": "blood-pressure-status"}

# Bit number of each status flag, for the ASN1ToHL7 code "<MDC code>.<bit>" (PHD IG bpm-status example:
# 8410608.0 body-movement, 8410608.5 improper-body-position; the Bluetooth 0x2A35 status uses the same bits).
STATUS_BITS: dict[str, dict[str, int]] = {
    "blood-pressure-status": {
        "body-movement": 0,
        "cuff-too-loose": 1,
        "irregular-pulse": 2,
        "pulse-rate-exceeds-upper-limit": 3,
        "pulse-rate-less-than-lower-limit": 4,
        "improper-body-position": 5,
    }
}


def measurement(key: str) -> Measurement:
    return MEASUREMENTS[key]


def by_code(system: str, code: str) -> Measurement | None:
    for m in MEASUREMENTS.values():
        if any(c.system == system and c.code == code for c in m.codings):
            return m
    return None
