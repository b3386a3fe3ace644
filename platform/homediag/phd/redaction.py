"""Redaction of what a PHD gateway sent, for upload-log readers: no patient identifier, no CPR."""

from __future__ import annotations

import re
from typing import Any

from homediag.fhir_profiles.walk import nodes, rebuild
from homediag.identity import CPR_SYSTEM, InvalidCpr, check_cpr

from .constants import PHD_IDENTIFIER_SYSTEM

REDACTED = "[redacted]"
_CPR_LIKE = re.compile(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)")


def patient_identifier_values(raw: Any) -> set[str]:
    """Every patient identifier value a request carries: a Patient's identifiers, ``subject.identifier``,
    any CPR-system identifier."""
    found: set[str] = set()
    for _path, key, node in nodes(raw):
        if not isinstance(node, dict):
            continue
        if node.get("resourceType") == "Patient":
            for ident in node.get("identifier") or []:
                if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                    found.add(ident["value"])
        ident = node.get("identifier")
        if key == "subject" and isinstance(ident, dict) and isinstance(ident.get("value"), str):
            found.add(ident["value"])
        if node.get("system") == CPR_SYSTEM and isinstance(node.get("value"), str):
            found.add(node["value"])
    return {v for v in found if v.strip()}


def carries(text: str, known: set[str]) -> bool:
    """Whether ``text`` is, or holds, one of the ``known`` patient identifier values."""
    return any(v == text or (len(v) >= 5 and v in text) for v in known)


def looks_like_cpr(text: str) -> bool:
    for match in _CPR_LIKE.finditer(text):
        try:
            check_cpr(match.group(1) + match.group(2))
            return True
        except InvalidCpr:
            continue
    return False


def _identifier(ident: Any) -> Any:
    return {"system": ident.get("system"), "value": REDACTED} if isinstance(ident, dict) else REDACTED


def redact_fhir(raw: Any, known: set[str] | None = None) -> Any:
    """The request as sent, for upload-log readers: a Patient keeps its resourceType, id, meta and
    identifier systems only; ``subject.identifier``/``display`` and the PHD dedup identifier (it embeds
    the patient's identifier) lose their values; any other string holding a patient identifier or a
    CPR-like number is replaced."""
    if not isinstance(raw, dict | list):
        return {"unreadable": True, "type": type(raw).__name__}
    known = patient_identifier_values(raw) if known is None else known

    def visit(_path: str, key: str | None, node: Any) -> Any:
        if isinstance(node, str):
            return REDACTED if carries(node, known) or looks_like_cpr(node) else node
        if not isinstance(node, dict):
            return node
        if node.get("resourceType") == "Patient":
            return {
                k: (
                    v
                    if k in ("resourceType", "id", "meta")
                    else [_identifier(i) for i in v]
                    if k == "identifier" and isinstance(v, list)
                    else REDACTED
                )
                for k, v in node.items()
            }
        out = dict(node)
        if key == "subject":
            if "identifier" in out:
                out["identifier"] = _identifier(node["identifier"])
            if "display" in out:
                out["display"] = REDACTED
        if key == "identifier" and node.get("system") == PHD_IDENTIFIER_SYSTEM and "value" in out:
            out["value"] = REDACTED
        return out

    return rebuild(raw, visit)
