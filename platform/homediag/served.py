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

Stored once on SQLite: there the JSON column *is* its text, and the ingest writes it as this very text (the
engine's serialiser is ``fhirjson.dumps``), so ``served_json`` is left NULL (``stored_once``) and a read
takes the text from ``resource`` (``coalesce(served_json, resource)``: a row written before keeps its own copy).
A row with marks and no ``served_json`` is one such: its marks are offsets into its resource's text. PostgreSQL's
``jsonb`` is not its text (it keeps neither the key order nor the spacing), so both are stored there.
"""

from __future__ import annotations

import re
import secrets
from bisect import bisect_left
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


def stored_once(dialect_name: str) -> bool:
    """Whether an engine stores an Observation's served text as its ``resource`` only (SQLite: see above)."""
    return dialect_name == "sqlite"


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


def splice_utf8(
    text: bytes, marks: str, meta: bytes, top: bytes = b"", components: Mapping[int, bytes] | None = None
) -> bytes:
    """``splice`` of a stored text as its UTF-8 bytes, the members as UTF-8 too: what a search reads from the store
    and sends, so that no text is decoded, sliced and encoded again (a text holding one character past Latin-1, as
    every blood pressure panel's NPU display does, is held two bytes a character, and each slice of it is scanned
    to be narrowed). The marks are character offsets: past a non-ASCII character they are moved by its extra
    bytes (``utf8_marks``)."""
    return splice_at(text, utf8_marks(text, marks), meta, top, components)


# a text's marks as byte offsets: (meta's brace or None, each component's brace)
ByteMarks = tuple[int | None, tuple[int, ...]]


def utf8_marks(text: bytes, marks: str) -> ByteMarks:
    """A stored text's splice marks (character offsets) as byte offsets into its UTF-8 ``text``."""
    meta_at, ends = _offsets(marks)
    if text.isascii():
        return meta_at, ends
    return _utf8_offsets(text, meta_at, ends)


def fits(text: bytes, at: ByteMarks) -> bool:
    """Whether byte offsets ``at`` (``utf8_marks``, remembered for a reading) each fall on a closing brace of
    ``text``: a check that a remembered reading's offsets are its text's."""
    meta_at, ends = at
    size = len(text)
    for b in ends:
        if not 0 < b < size or text[b] != _CLOSE:
            return False
    return meta_at is None or (0 < meta_at < size and text[meta_at] == _CLOSE)


def splice_at(
    text: bytes, at: ByteMarks, meta: bytes, top: bytes = b"", components: Mapping[int, bytes] | None = None
) -> bytes:
    """``splice_utf8`` given the marks as byte offsets (``utf8_marks``)."""
    meta_at, ends = at
    if meta_at is not None:
        inserts = [(meta_at, meta)]
    else:
        inserts = []
        top = b'"meta":{' + meta + b"}," + top if top else b'"meta":{' + meta + b"}"
    if components:
        inserts += [(ends[index], members) for index, members in components.items() if members]
    if top:
        inserts.append((len(text) - 1, top))
    if len(inserts) > 1:
        inserts.sort()
    out: list[bytes] = []
    pos = 0
    for at_, members in inserts:
        out.append(text[pos:at_])
        if text[at_ - 1] != _OPEN:
            out.append(b",")
        out.append(members)
        pos = at_
    out.append(text[pos:])
    return b"".join(out)


_OPEN, _CLOSE = ord("{"), ord("}")
_NOT_LEADS = bytes(range(0xC0))  # every byte but the first of a character of two to four bytes


def _utf8_offsets(text: bytes, meta_at: int | None, ends: tuple[int, ...]) -> ByteMarks:
    """Character offsets into the UTF-8 ``text`` (``meta_at``, ``ends``) as byte offsets. A stored text has a few
    non-ASCII characters: their first bytes, in order (``translate`` keeps them), are found one after the other
    (``bytes.find``: a byte of that value is always a first byte), and each moves every offset past it by its
    length less one."""
    starts: list[int] = []  # each such character's character offset
    extras: list[int] = []  # the extra bytes of it and of every one before it
    at = -1
    extra = 0
    for value in text.translate(None, _NOT_LEADS):
        at = text.find(_BYTES[value], at + 1)
        starts.append(at - extra)
        extra += 1 if value < 0xE0 else 2 if value < 0xF0 else 3
        extras.append(extra)

    def moved(offset: int) -> int:
        i = bisect_left(starts, offset)  # how many of them come before the offset
        return offset + extras[i - 1] if i else offset

    return (None if meta_at is None else moved(meta_at)), tuple(map(moved, ends))


_BYTES = [bytes((value,)) for value in range(256)]


@lru_cache(maxsize=50_000)
def _offsets(marks: str) -> tuple[int | None, tuple[int, ...]]:
    """A text's splice marks as (meta's brace or None, each component's brace): most texts of a kind share theirs."""
    meta_part, _, comp_part = marks.partition("|")
    return (int(meta_part) if meta_part else None), tuple(int(x) for x in comp_part.split(",") if x)


def bundle_bytes(bundle: Mapping[str, Any]) -> bytes:
    """``fhirjson.dumps_bytes(bundle)``, byte for byte, for a Bundle whose entries' resources are ``fhirjson.Raw``:
    their texts (what fhirjson wrote: they need no scan for what orjson writes unlike simplejson) are put in the
    Bundle as they are. Only the Bundle around them (links, fullUrls, search modes) goes through ``dumps_bytes``
    and its scan: for a 180-entry series that is a few kilobytes instead of 700.

    Written as bytes: each text is encoded on its own and the parts joined as bytes. A text with one character
    past Latin-1 (an NPU display's dash) is held two bytes a character, and encoding the whole 700 kB Bundle at
    once allocated a worst-case buffer of three bytes a character (2 MB) and took longer than encoding the
    entries one by one. When every entry is a search match of a stored text (``bundles.entry``: fullUrl,
    resource, search), the entries are written here, each around its text, and the Bundle without them by
    ``dumps_bytes``; otherwise a marker string stands in for each text and is replaced after (``_around``)."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return fhirjson.dumps_bytes(bundle)
    pieces = _matches(entries)
    if pieces is not None and list(bundle)[-1] == "entry":
        head = fhirjson.dumps_bytes({**bundle, "entry": []})
        if head.endswith(b'"entry":[]}'):
            pieces[0] = head[:-2]  # the Bundle up to its entries' bracket
            pieces.append(b"]}")
            return b"".join(pieces)  # one join: each buffer of the size of the Bundle is fresh memory, page by page
    return _around(bundle, entries)


_MATCH_KEYS = ["fullUrl", "resource", "search"]
_MATCH = {"mode": "match"}
# a fullUrl written by both JSON writers as its own characters in quotes (no quote, backslash or control character)
_PLAIN_URL = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")


def _matches(entries: list[Any]) -> list[bytes] | None:
    """The entries' parts, each entry written around its text (a place left first for the Bundle's head), when every
    entry is a search match of a stored text with a plain fullUrl (what ``bundles.entry`` makes of a
    ``fhirjson.Raw``); else None."""
    out: list[bytes] = [b"", _MATCH_START]
    for e in entries:
        if type(e) is not dict or list(e) != _MATCH_KEYS or e["search"] != _MATCH:
            return None
        resource, url = e["resource"], e["fullUrl"]
        if type(resource) is not fhirjson.Raw or type(url) is not str or _PLAIN_URL.fullmatch(url) is None:
            return None
        out += (url.encode(), _RESOURCE, _utf8(resource.text), _BETWEEN)  # one piece between two entries
    if len(out) == 2:
        return [b""]
    out[-1] = _MATCH_END
    return out


_MATCH_START, _RESOURCE = b'{"fullUrl":"', b'","resource":'
_MATCH_END = b',"search":{"mode":"match"}}'
_BETWEEN = _MATCH_END + b"," + _MATCH_START


def _around(bundle: Mapping[str, Any], entries: list[Any]) -> bytes:
    """``bundle_bytes`` of any Bundle: written with a marker string in place of each stored text, each then put in
    its marker's place."""
    marker = f"\x00{secrets.token_hex(8)}"  # a string no Bundle holds: a control character and a random nonce
    texts: list[bytes] = []
    skeleton: list[Any] = []
    for e in entries:
        resource = e.get("resource") if isinstance(e, dict) else None
        if type(resource) is fhirjson.Raw:
            texts.append(_utf8(resource.text))
            skeleton.append({**e, "resource": marker})
        else:
            skeleton.append(e)
    if not texts:
        return fhirjson.dumps_bytes(bundle)
    around = fhirjson.dumps_bytes({**bundle, "entry": skeleton})
    # the marker as written is ASCII ("\u0000" and hex digits): in UTF-8 an ASCII run never occurs inside another
    # character, so splitting the bytes is splitting the text
    parts = around.split(fhirjson.dumps_bytes(marker))
    if len(parts) != len(texts) + 1:  # cannot happen (the nonce); written the long way if it did
        return fhirjson.dumps_bytes(bundle)
    out = [parts[0]]
    for text, part in zip(texts, parts[1:], strict=True):
        out.append(text)
        out.append(part)
    return b"".join(out)


def _utf8(text: str | bytes) -> bytes:
    return text if type(text) is bytes else text.encode("utf-8")  # type: ignore[union-attr]
