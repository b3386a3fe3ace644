"""Codes and units of the home measurements, loaded from ``measurements.toml`` (the one source).

The table names, per measurement, its MDC, LOINC and NPU codes, canonical UCUM unit, accepted
alternative units with exact conversions, physiologic limits, and the source of each row. The
builders, the validator, the published StructureDefinitions and ``docs/profiles.md`` all read it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NPU_DK_CORE = "http://npu-terminology.org"
NPU_MEDCOM = "urn:oid:1.2.208.176.2.1"
NPU_SYSTEMS = (NPU_DK_CORE, NPU_MEDCOM)
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CATEGORY = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
ASN1_TO_HL7 = "http://terminology.hl7.org/CodeSystem/ASN1ToHL7"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SNOMED = "http://snomed.info/sct"


def exact(text: str) -> Decimal:
    """A decimal string or a fraction ``a/b`` of two, as an exact Decimal (to 28 digits for a fraction)."""
    if "/" in text:
        num, den = text.split("/", 1)
        return Decimal(num) / Decimal(den)
    return Decimal(text)


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
class Conversion:
    """``canonical = (value + offset) * factor``."""

    factor: Decimal
    offset: Decimal = Decimal(0)

    def apply(self, value: Decimal) -> Decimal:
        return (value + self.offset) * self.factor

    @property
    def is_identity(self) -> bool:
        return self.factor == 1 and self.offset == 0


@dataclass(frozen=True)
class Measurement:
    key: str
    text: str
    kind: str  # panel | component | quantity | status
    category: str  # vital-signs | laboratory | procedure | phd
    mdc: Coding | None = None
    loinc: Coding | None = None
    npu: Coding | None = None  # system is the DK Core one; see code_fhir for the configured one
    npu_unit: str | None = None
    unit: str | None = None
    unit_display: str | None = None
    conversions: dict[str, Conversion] = field(default_factory=dict)  # includes the canonical unit
    limits: tuple[Decimal, Decimal] | None = None
    components: tuple[str, ...] = ()
    required_components: tuple[str, ...] = ()
    part_of: str | None = None
    status_of: str | None = None
    bits: dict[str, int] = field(default_factory=dict)
    source: str = ""
    note: str = ""

    @property
    def codings(self) -> tuple[Coding, ...]:
        return tuple(c for c in (self.mdc, self.loinc, self.npu) if c is not None)

    @property
    def primary_code(self) -> str:
        """The code the store indexes: MDC where there is one, else LOINC."""
        coding = self.mdc or self.loinc
        assert coding is not None, self.key
        return coding.code

    @property
    def vital_signs(self) -> bool:
        return self.category == "vital-signs"

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(self.conversions)

    def code_fhir(self, npu_system: str = NPU_DK_CORE) -> dict[str, Any]:
        codings = [c.as_fhir() for c in (self.mdc, self.loinc) if c is not None]
        if self.npu is not None and (self.npu_unit is None or self.npu_unit == self.unit):
            codings.append(Coding(npu_system, self.npu.code, self.npu.display).as_fhir())
        return {"coding": codings, "text": self.text}

    def matches(self, system: str, code: str) -> bool:
        if system in NPU_SYSTEMS:
            return self.npu is not None and self.npu.code == code
        return any(c.system == system and c.code == code for c in (self.mdc, self.loinc) if c is not None)


def _coding(system: str, row: dict[str, Any] | None) -> Coding | None:
    return Coding(system, str(row["code"]), row.get("display")) if row else None


def _measurement(row: dict[str, Any]) -> Measurement:
    unit = row.get("unit")
    conversions: dict[str, Conversion] = {unit: Conversion(Decimal(1))} if unit else {}
    for alt, conv in (row.get("alternatives") or {}).items():
        conversions[alt] = Conversion(exact(conv["factor"]), exact(conv.get("offset", "0")))
    limits = row.get("limits")
    return Measurement(
        key=row["key"],
        text=row["text"],
        kind=row["kind"],
        category=row["category"],
        mdc=_coding(MDC, row.get("mdc")),
        loinc=_coding(LOINC, row.get("loinc")),
        npu=_coding(NPU_DK_CORE, row.get("npu")),
        npu_unit=row.get("npu_unit"),
        unit=unit,
        unit_display=row.get("unit_display"),
        conversions=conversions,
        limits=(exact(limits[0]), exact(limits[1])) if limits else None,
        components=tuple(row.get("components", ())),
        required_components=tuple(row.get("required_components", ())),
        part_of=row.get("part_of"),
        status_of=row.get("status_of"),
        bits=dict(row.get("bits", {})),
        source=row.get("source", ""),
        note=row.get("note", ""),
    )


@cache
def _load() -> dict[str, Measurement]:
    data = tomllib.loads(resources.files(__package__).joinpath("measurements.toml").read_text(encoding="utf-8"))
    table = {row["key"]: _measurement(row) for row in data["measurement"]}
    for m in table.values():
        for ref in (*m.components, m.part_of, m.status_of):
            if ref is not None and ref not in table:
                raise ValueError(f"measurements.toml: {m.key} refers to unknown measurement {ref!r}")
    return table


MEASUREMENTS: dict[str, Measurement] = _load()

# measurement key -> the status observation that carries its status bits
STATUS_MEASUREMENT_OF = {m.status_of: m.key for m in MEASUREMENTS.values() if m.status_of}
STATUS_BITS = {m.key: m.bits for m in MEASUREMENTS.values() if m.bits}


def measurement(key: str) -> Measurement:
    return MEASUREMENTS[key]


def _index() -> tuple[dict[tuple[str, str], list[Measurement]], dict[str, list[Measurement]]]:
    """The measurements by (system, code) as ``Measurement.matches`` answers, and by code in any system; each
    list in the table's order."""
    by_coding: dict[tuple[str, str], list[Measurement]] = {}
    by_code: dict[str, list[Measurement]] = {}
    for m in MEASUREMENTS.values():
        keys = [(c.system, c.code) for c in (m.mdc, m.loinc) if c is not None]
        keys += [(system, m.npu.code) for system in NPU_SYSTEMS] if m.npu is not None else []
        for key in keys:
            if m.matches(*key) and m not in by_coding.setdefault(key, []):
                by_coding[key].append(m)
        for c in m.codings:
            if m not in by_code.setdefault(c.code, []):
                by_code[c.code].append(m)
    return by_coding, by_code


_BY_CODING, _BY_CODE = _index()


def matching(system: str | None, code: str) -> list[Measurement]:
    """Every measurement with this coding (``system`` None: any system). LOINC 8867-4 names three."""
    if isinstance(code, str) and (system is None or isinstance(system, str)):  # the index (it runs per reading)
        return list(_BY_CODING.get((system, code), ()) if system else _BY_CODE.get(code, ()))
    return [
        m
        for m in MEASUREMENTS.values()
        if (m.matches(system, code) if system else any(c.code == code for c in m.codings))
    ]


def identify(concept: Any) -> Measurement | None:
    """The measurement a CodeableConcept names, MDC first (it is the most specific), then LOINC, then NPU."""
    codings = [c for c in (concept or {}).get("coding", []) or [] if isinstance(c, dict)]
    for system in (MDC, LOINC, *NPU_SYSTEMS):
        for c in codings:
            if c.get("system") == system:
                found = matching(system, str(c.get("code")))
                if found:
                    return found[0]
    return None
