"""The validator: is this a valid home-measurement Observation (or a valid FHIR resource)?

- ``check_rules``: the FHIR invariants fhir.resources leaves out (``invariants``) and the project's
  profile for the measurement (``profiles``). Cheap: it runs on FHIR a gateway or a vendor sends.
- ``check_built``: the profile alone, for the builder's own output on the ingest hot path (see there).
- ``check_structure``: structural validation with ``fhir.resources.R4B``.
- ``validate``: both, for FHIR that arrives from outside, ``$validate`` and the CLI.

Every issue carries a FHIRPath ``expression`` naming where it is.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from .invariants import check_invariants
from .issues import Issue, has_errors, operation_outcome
from .profiles import check_profile, profile_for

__all__ = ["Issue", "check_built", "check_rules", "check_structure", "has_errors", "operation_outcome", "validate"]


def check_rules(resource: dict[str, Any]) -> list[Issue]:
    if resource.get("resourceType") != "Observation":
        return check_invariants(resource)
    return _dedupe(check_invariants(resource) + _profiled(resource))


def check_built(resource: dict[str, Any]) -> list[Issue]:
    """``check_rules`` for an Observation the builder made: the measurement's profile (its physiologic limits, which
    a device's value may break), not the invariants. The builder's output meets those by construction, whatever a
    device sends: tests/unit/adapters/test_robustness.py feeds every adapter random and mutated payloads and finds no
    error but the limits in what ``build`` makes of them, by ``check_rules``, and that this finds the same. The
    invariants' walk of every element cost a blood-pressure panel 25–60 µs (``check_rules`` 44–79 µs, this 19), a
    list of 100 envelopes 5–7 % of its CPU (docs/performance.md, session 13)."""
    return _dedupe(_profiled(resource))


def _profiled(resource: dict[str, Any]) -> list[Issue]:
    """What the measurement's profile finds in an Observation; a warning when its code names none."""
    profile = profile_for(resource)
    if profile is None:
        return [
            Issue(
                "warning",
                "code-unknown",
                "the code names no home measurement this platform profiles; only base FHIR rules were checked",
                "Observation.code",
            )
        ]
    return check_profile(resource, profile)


def _dedupe(issues: list[Issue]) -> list[Issue]:
    """The invariants and a profile can find the same fault (obs-6, a bad UCUM code): say it once."""
    seen: set[tuple[str | None, str]] = set()
    out = []
    for issue in issues:
        key = (issue.expression, issue.code)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


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
    """Structure, then the rules. Structural errors stop there: the rules assume a well-formed resource."""
    issues = check_structure(resource)
    if has_errors(issues):
        return issues
    return check_rules(resource)
