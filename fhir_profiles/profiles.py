"""The project's Observation profiles as declarative rules, one per measurement (from the terminology table).

A profile says what a valid Observation of one measurement is: its codings, categories, required
elements, allowed units, physiologic limits and components. ``check_profile`` applies it;
``structure_definitions`` publishes the same rules as FHIR StructureDefinitions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from . import terminology as t
from .issues import Issue, Severity

CANONICAL = "https://homediag.example.org/fhir"
PROFILE_BASE = f"{CANONICAL}/StructureDefinition"
VITAL_SIGNS_BASE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
OBSERVATION_BASE = "http://hl7.org/fhir/StructureDefinition/Observation"
_OFFSET = re.compile(r"T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Profile:
    measurement: t.Measurement

    @property
    def id(self) -> str:
        return f"homediag-{self.measurement.key}"

    @property
    def url(self) -> str:
        return f"{PROFILE_BASE}/{self.id}"

    @property
    def base(self) -> str:
        return VITAL_SIGNS_BASE if self.measurement.vital_signs else OBSERVATION_BASE

    @property
    def required_codings(self) -> tuple[t.Coding, ...]:
        """Codings the Observation must carry: the vital-signs LOINC where the FHIR vital-signs profile names one."""
        m = self.measurement
        return (m.loinc,) if m.vital_signs and m.loinc is not None else ()

    @property
    def category(self) -> tuple[str, str]:
        m = self.measurement
        return (t.PHD_CATEGORY, "phd") if m.category == "phd" else (t.OBSERVATION_CATEGORY, m.category)


PROFILES: dict[str, Profile] = {
    m.key: Profile(m) for m in t.MEASUREMENTS.values() if m.kind in ("panel", "quantity", "status")
}


def profile_for(resource: dict[str, Any]) -> Profile | None:
    m = t.identify(resource.get("code"))
    if m is None:
        return None
    if m.kind == "component" and m.part_of:  # an Observation coded as a component: judge it as a quantity of that kind
        return Profile(m)
    return PROFILES.get(m.key)


def _codings(concept: Any) -> set[tuple[Any, Any]]:
    return {(c.get("system"), c.get("code")) for c in (concept or {}).get("coding", []) or [] if isinstance(c, dict)}


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def check_quantity(holder: dict[str, Any], path: str, m: t.Measurement) -> list[Issue]:
    """Unit, UCUM system and physiologic limits of ``holder.valueQuantity`` for measurement ``m``."""
    quantity = holder.get("valueQuantity")
    if quantity is None:
        if any(k.startswith("value") for k in holder):
            return [Issue("error", "structure", f"{m.text} takes a valueQuantity", f"{path}.value[x]")]
        if "dataAbsentReason" not in holder:
            return [
                Issue("error", "required", f"{m.text} needs a valueQuantity or a dataAbsentReason", f"{path}.value[x]")
            ]
        return []
    issues: list[Issue] = []
    qpath = f"{path}.valueQuantity"
    code = quantity.get("code")
    if quantity.get("system") != t.UCUM:
        issues.append(
            Issue(
                "error",
                "code-invalid",
                f"the unit system must be UCUM ({t.UCUM}), got {quantity.get('system')!r}",
                f"{qpath}.system",
            )
        )
    if code not in m.conversions:
        issues.append(
            Issue(
                "error",
                "code-invalid",
                f"{m.text} is measured in {', '.join(repr(u) for u in m.units)}; {code!r} is not one of them",
                f"{qpath}.code",
            )
        )
        return issues
    value = _decimal(quantity.get("value"))
    if value is None:
        issues.append(Issue("error", "required", "a valueQuantity needs a numeric value", f"{qpath}.value"))
    elif m.limits is not None:
        canonical = m.conversions[code].apply(value)
        low, high = m.limits
        if not low <= canonical <= high:
            shown = f"{value} {code}" + (f" ({canonical.quantize(Decimal('0.1'))} {m.unit})" if code != m.unit else "")
            issues.append(
                Issue(
                    "error",
                    "value",
                    f"{m.text} {shown} is outside the physiologic limits {low}-{high} {m.unit}",
                    f"{qpath}.value",
                )
            )
    return issues


def check_profile(resource: dict[str, Any], profile: Profile) -> list[Issue]:
    m = profile.measurement
    issues: list[Issue] = []
    codes = _codings(resource.get("code"))
    for coding in profile.required_codings:
        if (coding.system, coding.code) not in codes:
            issues.append(
                Issue(
                    "error",
                    "required",
                    f"{m.text}: the FHIR vital-signs profile requires the coding {coding.system}|{coding.code}",
                    "Observation.code.coding",
                )
            )
    categories = {
        c for concept in resource.get("category") or [] if isinstance(concept, dict) for c in _codings(concept)
    }
    if profile.category not in categories:
        severity: Severity = "error" if m.vital_signs else "warning"
        issues.append(
            Issue(
                severity,
                "required",
                f"{m.text} needs the category {profile.category[1]} ({profile.category[0]})",
                "Observation.category",
            )
        )
    subject = (resource.get("subject") or {}).get("reference")
    if not subject:
        issues.append(Issue("error", "required", "a home measurement must name its patient", "Observation.subject"))
    elif not re.match(r"^((https?://\S+/)?Patient/[A-Za-z0-9\-.]{1,64}|urn:uuid:[0-9a-fA-F-]{36})$", str(subject)):
        issues.append(
            Issue(
                "error",
                "value",
                f"subject must be a Patient reference, got {subject!r}",
                "Observation.subject.reference",
            )
        )
    effective = resource.get("effectiveDateTime")
    if effective is None and "effectivePeriod" not in resource and "effectiveInstant" not in resource:
        issues.append(
            Issue(
                "error",
                "required",
                "a home measurement must say when it was taken (effectiveDateTime)",
                "Observation.effective[x]",
            )
        )
    elif effective is not None and not _OFFSET.search(str(effective)):
        issues.append(
            Issue(
                "error",
                "value",
                f"effectiveDateTime {effective!r} needs a time with a UTC offset",
                "Observation.effectiveDateTime",
            )
        )
    if not (resource.get("device") or {}).get("reference"):
        issues.append(
            Issue("warning", "required", "a home measurement should name the device that took it", "Observation.device")
        )
    if m.kind == "panel":
        issues += _check_panel(resource, m)
    elif m.kind == "status":
        issues += _check_status(resource, m)
    else:
        issues += check_quantity(resource, "Observation", m)
    return issues


def _check_panel(resource: dict[str, Any], m: t.Measurement) -> list[Issue]:
    issues: list[Issue] = []
    if any(k.startswith("value") for k in resource):
        issues.append(
            Issue(
                "error",
                "invariant",
                f"{m.text} carries its values in components, not in Observation.value[x]",
                "Observation.value[x]",
            )
        )
    present: set[str] = set()
    for i, component in enumerate(resource.get("component") or []):
        path = f"Observation.component[{i}]"
        cm = t.identify(component.get("code")) if isinstance(component, dict) else None
        if cm is None or cm.key not in m.components:
            issues.append(Issue("warning", "code-unknown", f"this component is not part of {m.text}", f"{path}.code"))
            continue
        present.add(cm.key)
        issues += check_quantity(component, path, cm)
    for required in m.required_components:
        if required not in present:
            issues.append(
                Issue(
                    "error",
                    "required",
                    f"{m.text} needs a {t.measurement(required).text} component",
                    "Observation.component",
                )
            )
    return issues


def _check_status(resource: dict[str, Any], m: t.Measurement) -> list[Issue]:
    issues: list[Issue] = []
    known = {f"{m.primary_code}.{bit}" for bit in m.bits.values()}
    for i, component in enumerate(resource.get("component") or []):
        path = f"Observation.component[{i}]"
        codes = {code for system, code in _codings(component.get("code")) if system == t.ASN1_TO_HL7}
        if not codes & known:
            issues.append(Issue("warning", "code-unknown", f"not a known bit of {m.text}", f"{path}.code"))
        if "valueBoolean" not in component:
            issues.append(
                Issue("error", "structure", "a status bit component carries valueBoolean", f"{path}.value[x]")
            )
    return issues
