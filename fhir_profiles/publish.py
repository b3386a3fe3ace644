"""Publish the profiles: FHIR StructureDefinitions and the integrators' table in docs/profiles.md.

Both are generated from the terminology table and the profile rules, and checked in; a test fails
when a checked-in file differs from what this module generates (``homediag profiles publish``
rewrites them).
"""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from . import terminology as t
from .profiles import PROFILES, Profile

PUBLISHED = "2026-11-26"
VERSION = "0.1.0"


def _fhirpath_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _coding_test(m: t.Measurement) -> str:
    tests = [
        f"(system = {_fhirpath_string(c.system)} and code = {_fhirpath_string(c.code)})"
        for c in (m.mdc, m.loinc)
        if c is not None
    ]
    return f"coding.where({' or '.join(tests)}).exists()"


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def limits_in(m: t.Measurement, unit: str) -> tuple[Decimal, Decimal] | None:
    """The physiologic limits expressed in ``unit`` (inverse of the conversion), rounded outward to 4 decimals."""
    if m.limits is None:
        return None
    conv = m.conversions[unit]
    low, high = (limit / conv.factor - conv.offset for limit in m.limits)
    q = Decimal("0.0001")
    return low.quantize(q, rounding="ROUND_FLOOR"), high.quantize(q, rounding="ROUND_CEILING")


def _quantity_constraints(m: t.Measurement, path: str, key_prefix: str, source: str) -> list[dict[str, Any]]:
    units = " | ".join(_fhirpath_string(u) for u in m.units)
    out = [
        {
            "key": f"{key_prefix}-unit",
            "severity": "error",
            "human": f"{m.text} is in UCUM {', '.join(m.units)}",
            "expression": f"{path}value.ofType(Quantity).exists() implies ("
            f"{path}value.ofType(Quantity).system = 'http://unitsofmeasure.org' and "
            f"{path}value.ofType(Quantity).code in ({units}))",
            "source": source,
        }
    ]
    if m.limits is not None:
        checks = []
        for unit in m.units:
            bounds = limits_in(m, unit)
            assert bounds is not None
            checks.append(
                f"(code = {_fhirpath_string(unit)} implies "
                f"(value >= {_plain(bounds[0])} and value <= {_plain(bounds[1])}))"
            )
        out.append(
            {
                "key": f"{key_prefix}-limits",
                "severity": "error",
                "human": f"{m.text} lies within the physiologic limits "
                f"{_plain(m.limits[0])}-{_plain(m.limits[1])} {m.unit}",
                "expression": f"{path}value.ofType(Quantity).all({' and '.join(checks)})",
                "source": source,
            }
        )
    return out


def structure_definition(profile: Profile) -> dict[str, Any]:
    m = profile.measurement
    name = "Homediag" + "".join(part.capitalize() for part in m.key.replace("-", " ").split())
    constraints: list[dict[str, Any]] = [
        {
            "key": "hd-code",
            "severity": "error",
            "human": f"the code names {m.text}",
            "expression": f"code.{_coding_test(m)}",
            "source": profile.url,
        },
        {
            "key": "hd-category",
            "severity": "error" if m.vital_signs else "warning",
            "human": f"category {profile.category[1]} is present",
            "expression": f"category.coding.where(system = {_fhirpath_string(profile.category[0])} "
            f"and code = {_fhirpath_string(profile.category[1])}).exists()",
            "source": profile.url,
        },
        {
            "key": "hd-time",
            "severity": "error",
            "human": "the effective time has a time of day and a UTC offset",
            "expression": "effective.ofType(dateTime).exists() implies "
            "effective.ofType(dateTime).toString().matches('T[0-9]{2}:[0-9]{2}.*(Z|[+-][0-9]{2}:[0-9]{2})$')",
            "source": profile.url,
        },
    ]
    elements: list[dict[str, Any]] = [{"id": "Observation", "path": "Observation", "constraint": constraints}]
    if m.kind == "panel":
        elements[0]["constraint"] += [
            {
                "key": f"hd-{c}",
                "severity": "error",
                "human": f"a {t.measurement(c).text} component is present",
                "expression": f"component.code.{_coding_test(t.measurement(c))}",
                "source": profile.url,
            }
            for c in m.required_components
        ]
        for c in m.components:
            cm = t.measurement(c)
            elements[0]["constraint"] += _quantity_constraints(
                cm, f"component.where(code.{_coding_test(cm)}).", f"hd-{c}", profile.url
            )
    elif m.kind == "quantity":
        elements[0]["constraint"] += _quantity_constraints(m, "", "hd", profile.url)
    code_element: dict[str, Any] = {"id": "Observation.code", "path": "Observation.code", "min": 1}
    if profile.required_codings:
        code_element["patternCodeableConcept"] = {
            "coding": [{"system": c.system, "code": c.code} for c in profile.required_codings]
        }
    elements += [
        {"id": "Observation.status", "path": "Observation.status", "min": 1, "mustSupport": True},
        {"id": "Observation.category", "path": "Observation.category", "min": 1, "mustSupport": True},
        code_element,
        {
            "id": "Observation.subject",
            "path": "Observation.subject",
            "min": 1,
            "mustSupport": True,
            "type": [{"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Patient"]}],
        },
        {
            "id": "Observation.effective[x]",
            "path": "Observation.effective[x]",
            "min": 1,
            "type": [{"code": "dateTime"}],
            "mustSupport": True,
        },
        {"id": "Observation.device", "path": "Observation.device", "mustSupport": True},
    ]
    if m.kind == "panel":
        elements.append({"id": "Observation.value[x]", "path": "Observation.value[x]", "max": "0"})
        elements.append(
            {
                "id": "Observation.component",
                "path": "Observation.component",
                "min": len(m.required_components),
                "mustSupport": True,
            }
        )
    elif m.kind == "quantity":
        elements.append(
            {
                "id": "Observation.value[x]",
                "path": "Observation.value[x]",
                "type": [{"code": "Quantity"}],
                "mustSupport": True,
            }
        )
    elif m.kind == "status":
        elements.append(
            {
                "id": "Observation.component.value[x]",
                "path": "Observation.component.value[x]",
                "type": [{"code": "boolean"}],
            }
        )
    codes = ", ".join(f"{c.system}|{c.code}" for c in m.codings)
    return {
        "resourceType": "StructureDefinition",
        "id": profile.id,
        "url": profile.url,
        "version": VERSION,
        "name": name,
        "title": f"homediag {m.text}",
        "status": "active",
        "date": PUBLISHED,
        "publisher": "homediag (Nykøbing F. home-diagnostics pilot)",
        "description": f"{m.text} measured at home ({m.kind}, category {m.category}); codes {codes}. "
        "Generated from fhir_profiles/measurements.toml.",
        "fhirVersion": "4.0.1",
        "kind": "resource",
        "abstract": False,
        "type": "Observation",
        "baseDefinition": profile.base,
        "derivation": "constraint",
        "differential": {"element": elements},
    }


def structure_definitions() -> dict[str, dict[str, Any]]:
    return {p.id: structure_definition(p) for p in PROFILES.values()}


def published_structure_definition(profile_id: str) -> dict[str, Any] | None:
    """A checked-in StructureDefinition, as served at ``/fhir/StructureDefinition/{id}``."""
    if profile_id not in {p.id for p in PROFILES.values()}:
        return None
    text = (
        resources.files(__package__).joinpath("structuredefinitions", f"{profile_id}.json").read_text(encoding="utf-8")
    )
    return dict(json.loads(text))


def _conversion_text(conv: t.Conversion) -> str:
    if conv.offset:
        sign = "+" if conv.offset > 0 else "-"
        return f"(x {sign} {_plain(abs(conv.offset))}) x {_plain(conv.factor.quantize(Decimal('0.000001')))}"
    return f"x {_plain(conv.factor.quantize(Decimal('0.0000000001')))}"


def profiles_markdown() -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Home-measurement profiles",
        "",
        "Generated by `homediag profiles publish` from `fhir_profiles/measurements.toml`; do not edit by hand",
        "(a test fails when this page and the table disagree). The StructureDefinitions are served at",
        "`GET /fhir/StructureDefinition/{profile}` and listed as `supportedProfile` in `GET /fhir/metadata`.",
        "",
        "Every Observation the platform stores passes these rules; one that breaks an `error` is refused",
        "(HTTP 422 at ingest, the envelope kept in the upload log). Values sent in an accepted alternative",
        "unit are stored in the canonical unit: canonical = (value + offset) x factor. NPU codes are sent",
        "with the configured NPU system (DK Core `http://npu-terminology.org` by default, or MedCom",
        "`urn:oid:1.2.208.176.2.1`); both are accepted.",
        "",
        "| measurement | profile | kind | category | MDC | LOINC | NPU | unit | also accepted | limits |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in t.MEASUREMENTS.values():
        profile = PROFILES.get(m.key)
        pid = f"`{profile.id}`" if profile else f"component of `homediag-{m.part_of}`" if m.part_of else ""
        alternatives = "; ".join(f"`{u}` {_conversion_text(c)}" for u, c in m.conversions.items() if u != m.unit)
        limits = f"{_plain(m.limits[0])}-{_plain(m.limits[1])}" if m.limits else ""
        lines.append(
            "| "
            + " | ".join(
                cell(x)
                for x in (
                    m.text,
                    pid,
                    m.kind,
                    m.category,
                    m.mdc.code if m.mdc else "",
                    m.loinc.code if m.loinc else "",
                    m.npu.code if m.npu else "",
                    f"`{m.unit}`" if m.unit else "",
                    alternatives,
                    limits,
                )
            )
            + " |"
        )
    lines += [
        "",
        "## Rules of every profile",
        "",
        "- `status` from the required value set; `subject` a Patient reference; "
        "`effectiveDateTime` with a time and a UTC offset;",
        "  `device` should be present (warning when not).",
        "- `category`: `vital-signs` required for vital signs (error), "
        "`laboratory` or `procedure` expected for the others (warning).",
        "- Vital signs carry the LOINC code of the FHIR vital-signs profile.",
        "- A value with a `dataAbsentReason` is refused (obs-6); "
        "a special value from a device gives a `dataAbsentReason` and no value.",
        "- Quantities in UCUM (`system` http://unitsofmeasure.org, a valid UCUM `code`, one of the units above).",
        "- Values outside the physiologic limits are refused as a device or upload fault.",
        "- Blood pressure: a compound Observation without `value[x]`, with systolic and diastolic components.",
        "",
        "## Sources",
        "",
        "| measurement | source | note |",
        "|---|---|---|",
    ]
    for m in t.MEASUREMENTS.values():
        lines.append(f"| {cell(m.key)} | {cell(m.source)} | {cell(m.note)} |")
    return "\n".join(lines) + "\n"


def write_published(sd_dir: Path, doc_path: Path) -> list[Path]:
    sd_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for pid, sd in structure_definitions().items():
        path = sd_dir / f"{pid}.json"
        path.write_text(json.dumps(sd, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    doc_path.parent.mkdir(parents=True, exist_ok=True)
    doc_path.write_text(profiles_markdown(), encoding="utf-8")
    return [*written, doc_path]
