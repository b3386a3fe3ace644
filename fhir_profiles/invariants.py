"""Base FHIR R4 rules that fhir.resources does not check on an Observation.

- the required binding of ``Observation.status``;
- obs-6: ``dataAbsentReason`` only when there is no ``value[x]``;
- obs-7: a component with the same code as the Observation carries no value when the Observation does;
- reference format: ``Type/id``, an absolute URL, ``urn:uuid:``/``urn:oid:``, or ``#contained``;
- every Quantity that says it is UCUM has a valid UCUM code.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from .issues import Issue
from .ucum import UCUM, is_valid_ucum

OBSERVATION_STATUS = (
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
)
_REFERENCE = re.compile(
    r"^(#[A-Za-z0-9\-.]{1,64}"
    r"|([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?)"
    r"|https?://\S+/[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?"
    r"|urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|urn:oid:[0-2](\.(0|[1-9][0-9]*))+)$"
)
# the types of a plain JSON leaf (Decimal: a builder keeps a reading's digits); anything else sends a resource
# through ``_scan``
_LEAVES = frozenset({str, int, float, bool, type(None), Decimal})


def _scan(
    node: Any, path: str, references: list[tuple[str, str]], quantities: list[tuple[str, dict[str, Any]]]
) -> None:
    """One depth-first pass of every object and list: the invalid references
    and the UCUM quantities, with their paths. A path is formatted only on the way into an object or a list:
    this runs on every reading at ingest."""
    if isinstance(node, dict):
        if node.get("system") == UCUM and ("value" in node or "code" in node):
            quantities.append((path, node))
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and not _REFERENCE.match(value):
                references.append((path, value))
            if isinstance(value, (dict, list)):
                _scan(value, f"{path}.{key}", references, quantities)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, (dict, list)):
                _scan(item, f"{path}[{i}]", references, quantities)


def _faultless(node: Any) -> bool:
    """True when ``_scan`` and the UCUM check below would find nothing, found without formatting a path: one
    iterative pass that stops at the first fault. Nearly every resource at ingest is faultless; only a faulty one
    (or one holding anything but plain JSON values: then this answers False) pays the path-building ``_scan``.
    tests/unit/fhir_profiles/test_invariants.py checks the two agree."""
    stack = [node]
    pop, push, match = stack.pop, stack.append, _REFERENCE.match
    while stack:
        node = pop()
        kind = type(node)
        if kind is dict:
            if node.get("system") == UCUM and ("value" in node or "code" in node):
                code = node.get("code")
                if code is None or not is_valid_ucum(str(code)):
                    return False
            reference = node.get("reference")
            if type(reference) is str and not match(reference):
                return False
            values: Any = node.values()
        elif kind is list:
            values = node
        else:
            return False
        for value in values:
            kind = type(value)
            if kind is dict or kind is list:
                push(value)
            elif kind not in _LEAVES:
                return False
    return True


def _has_value(element: dict[str, Any]) -> bool:
    for k in element:
        if k.startswith("value") and k != "value":
            return True
    return False


def _codes(concept: Any) -> set[tuple[Any, Any]]:
    return {(c.get("system"), c.get("code")) for c in (concept or {}).get("coding", []) or [] if isinstance(c, dict)}


def check_invariants(resource: dict[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    rtype = str(resource.get("resourceType"))
    if rtype == "Observation":
        status = resource.get("status")
        if status is None:
            issues.append(Issue("error", "required", "Observation.status is required", "Observation.status"))
        elif status not in OBSERVATION_STATUS:
            issues.append(
                Issue(
                    "error",
                    "code-invalid",
                    f"status {status!r} is not in the required value set {', '.join(OBSERVATION_STATUS)}",
                    "Observation.status",
                )
            )
        if _has_value(resource) and "dataAbsentReason" in resource:
            issues.append(
                Issue(
                    "error",
                    "invariant",
                    "obs-6: dataAbsentReason SHALL only be present if value[x] is not present",
                    "Observation.dataAbsentReason",
                )
            )
        own = _codes(resource.get("code"))
        for i, component in enumerate(resource.get("component") or []):
            if not isinstance(component, dict):
                continue
            path = f"Observation.component[{i}]"
            if _has_value(component) and "dataAbsentReason" in component:
                issues.append(
                    Issue(
                        "error",
                        "invariant",
                        "obs-6: dataAbsentReason SHALL only be present if value[x] is not present",
                        f"{path}.dataAbsentReason",
                    )
                )
            if _has_value(resource) and _has_value(component) and own & _codes(component.get("code")):
                issues.append(
                    Issue(
                        "error",
                        "invariant",
                        "obs-7: a component with the Observation's own code SHALL NOT carry a value "
                        "when the Observation does",
                        f"{path}.value[x]",
                    )
                )
    if _faultless(resource):
        return issues
    references: list[tuple[str, str]] = []
    quantities: list[tuple[str, dict[str, Any]]] = []
    _scan(resource, rtype, references, quantities)
    for path, value in references:
        issues.append(
            Issue(
                "error",
                "value",
                f"{value!r} is not a valid reference (Type/id, an absolute URL, urn:uuid: or #id)",
                f"{path}.reference",
            )
        )
    for path, quantity in quantities:
        code = quantity.get("code")
        if code is None:
            issues.append(Issue("error", "required", "a UCUM quantity needs a unit code", f"{path}.code"))
        elif not is_valid_ucum(str(code)):
            issues.append(
                Issue(
                    "error",
                    "code-invalid",
                    f"{code!r} is not a valid UCUM code (e.g. 'mm[Hg]', not 'mmHg')",
                    f"{path}.code",
                )
            )
    return issues
