"""What the rules may find in an Observation built from any reading an adapter returns.

The builder's output is correct by construction (docs/architecture.md): whatever a device sends,
the only errors the profile rules may find in it are values outside the physiologic limits, which
a device can send and the platform then refuses.
"""

from __future__ import annotations

from typing import Any

from homediag.fhir_profiles import check_built, check_rules
from homediag.fhir_profiles.issues import Issue


def is_outside_limits(issue: Issue) -> bool:
    return issue.code == "value" and (issue.expression or "").endswith("valueQuantity.value")


def assert_only_limit_errors(resource: dict[str, Any]) -> None:
    """check_rules finds no error in ``resource`` other than a value outside the physiologic limits, and ingest's
    rules for the builder's output (``check_built``: the profile alone) find exactly what check_rules finds."""
    issues = check_rules(resource)
    errors = [i for i in issues if i.severity == "error" and not is_outside_limits(i)]
    assert errors == [], errors
    assert check_built(resource) == issues
