"""A stored Observation's served text, and the splice that serves it without parsing it.

Every stored Observation keeps, beside its resource (the JSON column searches and monitoring read), the text
``fhirjson`` writes for it (``observation.served_json``) and where a read adds to it (``served_marks``): the
offset of the closing brace of its ``meta`` and of each of its components. A search in care writes each entry
from that text: ``meta.versionId``/``meta.lastUpdated`` go in before meta's brace (or as a new ``meta`` at the
end), a clinician's triage (``interpretation``, ``referenceRange``) at the end of the resource and of each
component; nothing is parsed and nothing is written twice.

A resource whose reads would *replace* something (it already has ``interpretation`` or ``referenceRange``, at
the top or in a component, or a meta with a version) or that contains other resources has no marks: it is
served by parsing, as before. So is a row written before the column existed and not yet back-filled.

Marks: ``"<meta brace>|<component brace>,<component brace>,..."`` (character offsets into the text; the meta
part empty when there is no meta).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from homediag.fhir_profiles import fhirjson

# what a read writes into a resource: a resource or component that already has one is served by parsing
_ADDED = ("interpretation", "referenceRange")


def written(resource: Mapping[str, Any]) -> tuple[str, str | None]:
    """(the text ``fhirjson.dumps`` writes for ``resource``, its splice marks or None)."""
    text = fhirjson.dumps(resource)
    return text, _marks(resource, text)


def fill(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (observation rows with their ``resource``), each given its ``served_json`` and ``served_marks``."""
    for row in rows:
        row["served_json"], row["served_marks"] = written(row["resource"])
    return rows


def _marks(resource: Mapping[str, Any], text: str) -> str | None:
    if "contained" in resource or any(k in resource for k in _ADDED):
        return None  # a nested resource could hold the members found below; a read would replace these
    meta_end = ""
    meta = resource.get("meta")
    if meta is not None:
        if not isinstance(meta, dict) or "versionId" in meta or "lastUpdated" in meta:
            return None
        # '"meta":' cannot occur inside a string (its quotes would be escaped), and no other member of an
        # Observation without contained resources is called meta: the first one is the resource's
        at = text.find('"meta":')
        body = fhirjson.dumps(meta)
        if at < 0 or text[at + 7 : at + 7 + len(body)] != body:
            return None
        meta_end = str(at + 7 + len(body) - 1)
    ends: list[str] = []
    components = resource.get("component")
    if components is not None:
        if not isinstance(components, list):
            return None
        at = text.find('"component":[')
        if at < 0:
            return None
        pos = at + len('"component":[')
        for component in components:
            if not isinstance(component, dict) or any(k in component for k in _ADDED):
                return None
            body = fhirjson.dumps(component)
            if text[pos : pos + len(body)] != body:
                return None
            ends.append(str(pos + len(body) - 1))
            pos += len(body) + 1
    return f"{meta_end}|{','.join(ends)}"


def splice(text: str, marks: str, meta: str, top: str = "", components: Mapping[int, str] | None = None) -> str:
    """``text`` (a stored resource's served text, its ``marks``) with the members ``meta`` added to its meta,
    ``top`` at its end and ``components[i]`` at the end of component i (each: JSON members without braces,
    comma-separated; empty: nothing)."""
    meta_at, ends = _offsets(marks)
    inserts: list[tuple[int, str]] = []
    if meta_at is not None:
        inserts.append((meta_at, meta))
    else:
        top = f'"meta":{{{meta}}},{top}' if top else f'"meta":{{{meta}}}'
    if components:
        inserts += [(ends[index], members) for index, members in components.items() if members]
    if top:
        inserts.append((len(text) - 1, top))
    inserts.sort()
    out: list[str] = []
    pos = 0
    for at, members in inserts:
        out += (text[pos:at], "," + members if text[at - 1] != "{" else members)
        pos = at
    out.append(text[pos:])
    return "".join(out)


@lru_cache(maxsize=50_000)
def _offsets(marks: str) -> tuple[int | None, tuple[int, ...]]:
    """A text's splice marks as (meta's brace or None, each component's brace): most texts of a kind share theirs."""
    meta_part, _, comp_part = marks.partition("|")
    return (int(meta_part) if meta_part else None), tuple(int(x) for x in comp_part.split(",") if x)


def bundle_bytes(bundle: Mapping[str, Any]) -> bytes:
    """``fhirjson.dumps_bytes(bundle)``, byte for byte, for a Bundle whose entries' resources are ``fhirjson.Raw``:
    the Bundle is written with a marker string in place of each such resource, and their texts (what fhirjson
    wrote: they need no scan for what orjson writes unlike simplejson) are put in its place. Only the Bundle
    around them (links, fullUrls, search modes) goes through ``dumps_bytes`` and its scan: for a 180-entry
    series that is a few kilobytes instead of 700."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return fhirjson.dumps_bytes(bundle)
    marker = f"\x00{secrets.token_hex(8)}"  # a string no Bundle holds: a control character and a random nonce
    texts: list[str] = []
    skeleton: list[Any] = []
    for e in entries:
        resource = e.get("resource") if isinstance(e, dict) else None
        if type(resource) is fhirjson.Raw:
            texts.append(resource.text)
            skeleton.append({**e, "resource": marker})
        else:
            skeleton.append(e)
    if not texts:
        return fhirjson.dumps_bytes(bundle)
    around = fhirjson.dumps_bytes({**bundle, "entry": skeleton}).decode("utf-8")
    parts = around.split(fhirjson.dumps(marker))
    if len(parts) != len(texts) + 1:  # cannot happen (the nonce); written the long way if it did
        return fhirjson.dumps_bytes(bundle)
    out = [parts[0]]
    for text, part in zip(texts, parts[1:], strict=True):
        out.append(text)
        out.append(part)
    return "".join(out).encode("utf-8")  # one encoding of the whole text, not one per entry
