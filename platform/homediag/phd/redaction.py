"""Redaction of what a PHD gateway sent, for upload-log readers: no patient identifier, no CPR."""

from __future__ import annotations

from typing import Any

from homediag.fhir_profiles.walk import nodes, rebuild
from homediag.identity import CPR_SYSTEM, looks_like_cpr

from .constants import PHD_IDENTIFIER_SYSTEM

REDACTED = "[redacted]"


def patient_identifier_values(raw: Any) -> set[str]:
    """Every patient identifier value a request carries: a Patient's identifiers and name parts (family,
    given, text of at least three letters), ``subject.identifier``, any CPR-system identifier."""
    found: set[str] = set()
    for _path, key, node in nodes(raw):
        if not isinstance(node, dict):
            continue
        if node.get("resourceType") == "Patient":
            for ident in node.get("identifier") or []:
                if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                    found.add(ident["value"])
            found |= _name_parts(node.get("name"))
        ident = node.get("identifier")
        if key == "subject" and isinstance(ident, dict) and isinstance(ident.get("value"), str):
            found.add(ident["value"])
        if node.get("system") == CPR_SYSTEM and isinstance(node.get("value"), str):
            found.add(node["value"])
    return {v for v in found if v.strip()}


def _name_parts(names: Any) -> set[str]:
    parts: set[str] = set()
    for name in names if isinstance(names, list) else []:
        if not isinstance(name, dict):
            continue
        given = name.get("given")
        for part in [name.get("family"), name.get("text"), *(given if isinstance(given, list) else [])]:
            if isinstance(part, str) and len(part.strip()) >= 3:
                parts.add(part.strip())
    return parts


def carries(text: str, known: set[str]) -> bool:
    """Whether ``text`` is, or holds, one of the ``known`` patient identifier values (or name parts), or
    anything that looks like a CPR number (in any digit form)."""
    lowered = text.casefold()
    return any(v == text or (len(v) >= 5 and v.casefold() in lowered) for v in known) or looks_like_cpr(text)


def _identifier(ident: Any) -> Any:
    return {"system": ident.get("system"), "value": REDACTED} if isinstance(ident, dict) else REDACTED


def redact_fhir(raw: Any, known: set[str] | None = None) -> Any:
    """The request as sent, for upload-log readers: a Patient keeps its resourceType, id, meta and
    identifier systems only; ``subject.identifier``, every reference's ``display``, ``note``, narrative
    ``text`` and the PHD dedup identifier (it embeds the patient's identifier) lose their values; any other
    string holding a patient identifier, a name part of the Patient or a CPR-like number is replaced."""
    if not isinstance(raw, dict | list):
        return {"unreadable": True, "type": type(raw).__name__}
    known = patient_identifier_values(raw) if known is None else known

    def visit(_path: str, key: str | None, node: Any) -> Any:
        if key == "note" or (key == "text" and isinstance(node, dict) and "div" in node):
            return REDACTED  # free text (annotations, narrative) is not shown in the log, whatever it holds
        if isinstance(node, str):
            return REDACTED if carries(node, known) else node
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
        if key == "subject" and "identifier" in out:
            out["identifier"] = _identifier(node["identifier"])
        if "display" in out and ("reference" in out or "identifier" in out or key in ("subject", "performer")):
            out["display"] = REDACTED  # a reference's display names a person
        if key == "identifier" and node.get("system") == PHD_IDENTIFIER_SYSTEM and "value" in out:
            out["value"] = REDACTED
        return out

    return rebuild(raw, visit)
