"""What a pseudonymous reader may see of a resource: a projection onto the elements the profiles define.

An allow-list, not a deny-list. Of an Observation only the elements the project's profiles give a
meaning to pass: status, category, code, subject, the effective time, issued, value[x] (quantity,
coded, boolean, integer, range, sampled data), dataAbsentReason, interpretation, bodySite, method,
device, referenceRange, hasMember, derivedFrom, component (code, value, dataAbsentReason,
interpretation) and the profiles' own extensions (gateway device, gateway receive time, device user
number). Free text never passes: ``text``, ``note``, ``performer``, ``valueString``, a coding's
``display`` unless it is the terminology's own display for that code, unknown extensions and unknown
elements are left out. Every time passes through the caller's ``time`` (a pseudonymous reader's
shift, or None to leave it out), every reference through ``reference`` (a pseudonym, or None to
leave the element out), every code through ``safe`` (False leaves it out).

Pure: no service, database or web framework.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeAlias

from . import terminology as t
from .builder import EXT_GATEWAY_DEVICE, EXT_GATEWAY_RECEIVED, EXT_USER_ID

Spec: TypeAlias = str | dict[str, "Spec"]

# scalar kinds: code (a token), uri, number, bool, time, reference, display, sampled (SampledData.data)
CODING: dict[str, Spec] = {"system": "uri", "version": "code", "code": "code", "display": "display"}
CONCEPT: dict[str, Spec] = {"coding": CODING, "text": "display"}
QUANTITY: dict[str, Spec] = {"value": "number", "comparator": "code", "unit": "code", "system": "uri", "code": "code"}
REFERENCE: dict[str, Spec] = {"reference": "reference"}
PERIOD: dict[str, Spec] = {"start": "time", "end": "time"}
RANGE: dict[str, Spec] = {"low": QUANTITY, "high": QUANTITY}
SAMPLED: dict[str, Spec] = {
    "origin": QUANTITY,
    "period": "number",
    "factor": "number",
    "lowerLimit": "number",
    "upperLimit": "number",
    "dimensions": "number",
    "data": "sampled",
}
VALUE: dict[str, Spec] = {
    "valueQuantity": QUANTITY,
    "valueCodeableConcept": CONCEPT,
    "valueBoolean": "bool",
    "valueInteger": "number",
    "valueRange": RANGE,
    "valueSampledData": SAMPLED,
    "valueDateTime": "time",
    "valuePeriod": PERIOD,
    "dataAbsentReason": CONCEPT,
    "interpretation": CONCEPT,
}
REFERENCE_RANGE: dict[str, Spec] = {"low": QUANTITY, "high": QUANTITY, "type": CONCEPT, "appliesTo": CONCEPT}
META: dict[str, Spec] = {
    "versionId": "code",
    "profile": "uri",
    "security": CODING,
    "tag": CODING,
    "lastUpdated": "time",
}
# the profiles' extensions, by url: the value element each carries
EXTENSIONS: dict[str, tuple[str, Spec]] = {
    EXT_GATEWAY_DEVICE: ("valueReference", REFERENCE),
    EXT_GATEWAY_RECEIVED: ("valueDateTime", "time"),
    EXT_USER_ID: ("valueInteger", "number"),
    "http://hl7.org/fhir/uv/phd/StructureDefinition/CoincidentTimeStampReference": ("valueReference", REFERENCE),
}
OBSERVATION: dict[str, Spec] = {
    "meta": META,
    "extension": "extension",
    "status": "code",
    "category": CONCEPT,
    "code": CONCEPT,
    "subject": REFERENCE,
    "effectiveDateTime": "time",
    "effectivePeriod": PERIOD,
    "effectiveInstant": "time",
    "issued": "time",
    **VALUE,
    "bodySite": CONCEPT,
    "method": CONCEPT,
    "device": REFERENCE,
    "referenceRange": REFERENCE_RANGE,
    "hasMember": REFERENCE,
    "derivedFrom": REFERENCE,
    "component": {"code": CONCEPT, **VALUE, "referenceRange": REFERENCE_RANGE},
}
PATIENT: dict[str, Spec] = {"meta": META, "active": "bool"}
RESOURCES: dict[str, dict[str, Spec]] = {"Observation": OBSERVATION, "Patient": PATIENT}

_TOKEN = re.compile(r"[^\s]{1,200}(?: [^\s]{1,200}){0,3}")
_URI = re.compile(r"[^\s]{1,500}")
_SAMPLED = re.compile(r"(?:[0-9.eE+\-]+|E|L|U)(?: (?:[0-9.eE+\-]+|E|L|U))*")


@lru_cache(maxsize=1)
def known_displays() -> frozenset[tuple[str, str, str]]:
    """(system, code, display) of every coding the terminology table writes: the only displays shown."""
    found: set[tuple[str, str, str]] = set()

    def add(concept: Any) -> None:
        for coding in concept.get("coding", []) if isinstance(concept, dict) else []:
            if coding.get("display"):
                found.add((coding["system"], coding["code"], coding["display"]))

    for m in t.MEASUREMENTS.values():
        for npu in t.NPU_SYSTEMS:
            add(m.code_fhir(npu))
    for code, display in (("vital-signs", "Vital Signs"), ("laboratory", "Laboratory"), ("procedure", "Procedure")):
        found.add((t.OBSERVATION_CATEGORY, code, display))
    return frozenset(found)


@dataclass(frozen=True)
class Projection:
    """The reader's functions: ``time`` maps a FHIR date/dateTime/instant (None: leave it out),
    ``reference`` a reference string (None: leave the element out), ``safe`` says whether a code or uri
    may be shown (a CPR-like number may not)."""

    time: Callable[[str], str | None]
    reference: Callable[[str], str | None]
    safe: Callable[[str], bool]

    def resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        """``resource`` projected: resourceType and id (as given: the caller pseudonymises ids) and the
        elements its type's allow-list names. An unknown type keeps resourceType and id only."""
        spec = RESOURCES.get(str(resource.get("resourceType")), {})
        out: dict[str, Any] = {"resourceType": resource.get("resourceType"), "id": resource.get("id")}
        out.update(self._object(resource, spec))
        return out

    def _object(self, node: dict[str, Any], spec: dict[str, Spec]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            element = spec.get(key)
            if element is None:
                continue
            kept = self._element(value, element, node)
            if kept is not None and kept != [] and kept != {}:
                out[key] = kept
        return out

    def _element(self, value: Any, spec: Spec, holder: dict[str, Any]) -> Any:
        if isinstance(value, list):
            items = [self._element(v, spec, holder) for v in value]
            return [v for v in items if v is not None and v != {}]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                return None
            kept = self._object(value, spec)
            if spec is CODING and "code" in value and "code" not in kept:
                return None  # a coding whose code may not be shown says nothing
            return kept
        return self._scalar(value, spec, holder)

    def _scalar(self, value: Any, kind: str, holder: dict[str, Any]) -> Any:
        if kind == "extension":
            return self._extension(value)
        if kind == "bool":
            return value if isinstance(value, bool) else None
        if kind == "number":
            return value if isinstance(value, int | float | Decimal) and not isinstance(value, bool) else None
        if not isinstance(value, str):
            return None
        if kind == "time":
            return self.time(value)
        if kind == "reference":
            return self.reference(value)
        if kind == "display":
            system, code = holder.get("system"), holder.get("code")
            if (system, code, value) in known_displays():
                return value
            # a CodeableConcept's text: shown only when it repeats a known display of one of its codings
            codings = holder.get("coding")
            codings = codings if isinstance(codings, list) else []
            known = {(c.get("system"), c.get("code"), value) for c in codings if isinstance(c, dict)}
            return value if known & known_displays() else None
        pattern = {"code": _TOKEN, "uri": _URI, "sampled": _SAMPLED}[kind]
        return value if pattern.fullmatch(value) and self.safe(value) else None

    def _extension(self, value: Any) -> Any:
        if not isinstance(value, dict) or value.get("url") not in EXTENSIONS:
            return None
        element, spec = EXTENSIONS[value["url"]]
        kept = self._element(value.get(element), spec, value) if element in value else None
        return {"url": value["url"], element: kept} if kept is not None else None
