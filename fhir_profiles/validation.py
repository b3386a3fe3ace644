"""What a valid home-measurement Observation is: cheap profile rules, and full structural validation.

``check_rules`` is fast enough for every reading on the ingest path. ``validate`` adds the
structural validation of ``fhir.resources.R4B``, for FHIR that arrives from outside and for tests.
Each issue carries a FHIRPath ``expression`` naming where it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from . import terminology as t

Severity = Literal["fatal", "error", "warning", "information"]

OBSERVATION_STATUS = {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
_DATETIME_WITH_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")
# Patient/id, an absolute URL ending in Patient/id, or a Bundle-internal urn:uuid reference
_PATIENT_REFERENCE = re.compile(r"^((https?://\S+/)?Patient/[A-Za-z0-9\-.]{1,64}|urn:uuid:[0-9a-fA-F-]{36})$")


@dataclass(frozen=True, slots=True)
class Issue:
    severity: Severity
    code: str  # OperationOutcome issue type: structure, required, value, invariant, code-invalid, ...
    diagnostics: str
    expression: str | None = None

    def as_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


def has_errors(issues: list[Issue]) -> bool:
    return any(i.severity in ("error", "fatal") for i in issues)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    if not issues:
        issues = [Issue("information", "informational", "no issues found")]
    return {"resourceType": "OperationOutcome", "issue": [i.as_fhir() for i in issues]}


def _find_measurement(code: Any) -> t.Measurement | None:
    for coding in (code or {}).get("coding", []) or []:
        m = t.by_code(str(coding.get("system")), str(coding.get("code")))
        if m is not None:
            return m
    return None


def _check_value(holder: dict[str, Any], path: str, m: t.Measurement | None, issues: list[Issue]) -> None:
    has_value = any(k.startswith("value") for k in holder)
    if has_value and "dataAbsentReason" in holder:
        issues.append(Issue("error", "invariant", "obs-6: dataAbsentReason SHALL only be present if value[x] is not present", f"{path}.dataAbsentReason"))
    quantity = holder.get("valueQuantity")
    if quantity is None or m is None or m.unit is None:
        return
    qpath = f"{path}.valueQuantity"
    if quantity.get("system") != t.UCUM:
        issues.append(Issue("error", "code-invalid", f"unit system must be {t.UCUM}, got {quantity.get('system')!r}", f"{qpath}.system"))
    if quantity.get("code") != m.unit:
        issues.append(Issue("error", "code-invalid", f"{m.text} must be in UCUM '{m.unit}', got {quantity.get('code')!r}", f"{qpath}.code"))
        return
    value = quantity.get("value")
    if value is None:
        issues.append(Issue("error", "required", "a valueQuantity needs a value", f"{qpath}.value"))
        return
    if m.limits is not None:
        low, high = m.limits
        if not low <= Decimal(str(value)) <= high:
            issues.append(Issue("error", "value", f"{m.text} {value} {m.unit} is outside the physiologic limits {low}-{high} {m.unit}", f"{qpath}.value"))


def check_rules(resource: dict[str, Any]) -> list[Issue]:
    """The project's profile rules for a home-measurement Observation (no structural validation)."""
    issues: list[Issue] = []
    if resource.get("resourceType") != "Observation":
        return [Issue("error", "structure", f"expected an Observation, got {resource.get('resourceType')!r}", "resourceType")]
    status = resource.get("status")
    if status not in OBSERVATION_STATUS:
        issues.append(Issue("error", "code-invalid", f"status {status!r} is not one of {sorted(OBSERVATION_STATUS)}", "Observation.status"))
    m = _find_measurement(resource.get("code"))
    if m is None:
        issues.append(Issue("warning", "code-unknown", "code names no home measurement this platform profiles", "Observation.code"))
    subject = (resource.get("subject") or {}).get("reference")
    if not subject:
        issues.append(Issue("error", "required", "an Observation must name its patient", "Observation.subject"))
    elif not _PATIENT_REFERENCE.match(str(subject)):
        issues.append(Issue("error", "value", f"subject must be a Patient reference, got {subject!r}", "Observation.subject.reference"))
    effective = resource.get("effectiveDateTime")
    if effective is None:
        if "effectivePeriod" not in resource and "effectiveInstant" not in resource:
            issues.append(Issue("error", "required", "an Observation must say when it was measured", "Observation.effective[x]"))
    elif not _DATETIME_WITH_TIME.match(str(effective)) or not re.search(r"(Z|[+-]\d{2}:\d{2})$", str(effective)):
        issues.append(Issue("error", "value", f"effectiveDateTime {effective!r} needs a time with a UTC offset", "Observation.effectiveDateTime"))
    _check_value(resource, "Observation", m, issues)
    components = resource.get("component") or []
    if m is not None and m.components:
        if any(k.startswith("value") for k in resource):
            issues.append(Issue("error", "invariant", f"{m.text} carries its values in components, not in Observation.value[x]", "Observation.value[x]"))
        for i, component in enumerate(components):
            cm = _find_measurement(component.get("code"))
            path = f"Observation.component[{i}]"
            if cm is None or cm.key not in m.components:
                issues.append(Issue("warning", "code-unknown", f"component code is not part of {m.text}", f"{path}.code"))
            _check_value(component, path, cm, issues)
        present = {cm.key for c in components if (cm := _find_measurement(c.get("code"))) is not None}
        for required in m.components[:2]:
            if required not in present:
                issues.append(Issue("error", "required", f"{m.text} needs a {t.measurement(required).text} component", "Observation.component"))
    if (resource.get("device") or {}).get("reference") is None:
        issues.append(Issue("warning", "required", "a home measurement should name the device that took it", "Observation.device"))
    return issues


def check_structure(resource: dict[str, Any]) -> list[Issue]:
    """Structural validation of any R4 resource with fhir.resources.R4B."""
    from fhir.resources.R4B import get_fhir_model_class

    resource_type = resource.get("resourceType")
    try:
        model = get_fhir_model_class(str(resource_type))
    except (KeyError, ValueError):
        return [Issue("error", "structure", f"unknown resourceType {resource_type!r}", "resourceType")]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [
            Issue("error", "structure", err["msg"], ".".join([str(resource_type), *(str(p) for p in err["loc"])]))
            for err in exc.errors()
        ]
    return []


def validate(resource: dict[str, Any]) -> list[Issue]:
    """Structure, then the profile rules."""
    issues = check_structure(resource)
    if has_errors(issues):
        return issues
    if resource.get("resourceType") == "Observation":
        issues += check_rules(resource)
    return issues
