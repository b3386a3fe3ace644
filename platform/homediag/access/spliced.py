"""A search page in care written from each Observation's stored text (``observation.served_json``; on SQLite the
resource's own text when that is NULL: ``homediag.served``), with its meta and a clinician's triage spliced in
(``homediag.served``) rather than parsed and written again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import compress, repeat
from operator import is_, is_not
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from homediag import served, versions
from homediag.bounded import Bounded
from homediag.fhir_profiles import fhirjson
from homediag.monitoring import store
from homediag.search_params import ObservationQuery
from homediag.store import models as m

from .decisions import Decisions
from .interpretation import interpret, triage_keys
from .view import View


def served_as_text(q: ObservationQuery, view: View) -> bool:
    """Whether a search's entries are written from the stored text (``homediag.served``): in care (the View is
    the identity), the whole resource asked for, nothing included (what ``_include`` reads, it parses)."""
    return view.domain is None and q.summary in (None, "false") and not q.elements and not q.includes


@dataclass
class _Parsed:
    """A row as ``interpret`` reads it: its ids and its resource."""

    id: str
    patient_key: str
    resource: dict[str, Any]


def spliced(
    access: Decisions, session: Session, view: View, rows: list[Any], settings_tops: Mapping[str, str] | None = None
) -> list[Mapping[str, Any]]:
    """The entries of a page in care, each written from its stored text (``fhirjson.Raw``) with its meta and, for
    a clinician, its triage spliced in (``homediag.served``). ``interpret`` decides the triage as for every other
    read: it is given each resource as orjson reads it (fractions as floats: what the triage reads them as,
    ``float`` of the exact value), and what it adds is written into the text. A row without marks (or text: not
    yet back-filled: PostgreSQL; on SQLite the text is then the resource's, ``paging.served_utf8``) is parsed and
    served as before. ``settings_tops``: patient key -> its highest settings version, read with the page
    (``paging.page_rows``): the settings history is then taken from this process's memory of it when it holds that
    version (``_HISTORIES``), not read again."""
    clinician = view.principal.role == "clinician"  # interpret adds to a clinician's resources only
    marked = [r for r in rows if r.served_marks is not None]
    keys = triage_keys(session, marked, _histories(session, settings_tops)) if clinician and marked else {}
    missing = [r.id for r in rows if r.served_json is None]
    stored: dict[str, Any] = {}
    if missing:
        found = session.connection().execute(
            select(m.Observation.id, m.Observation.resource).where(m.Observation.id.in_(missing))
        )
        stored = {row_id: resource for row_id, resource in found}
    given: dict[str, dict[str, Any]] = {}  # what interpret reads, per row id
    remembered = {r.id: _ADDED.get(keys[r.id]) for r in rows if r.id in keys}  # read once: another thread may clear
    for r in rows:
        if r.served_json is None:
            given[r.id] = stored[r.id]
        elif r.served_marks is None:
            given[r.id] = fhirjson.loads(r.served_json)
        elif clinician and remembered.get(r.id) is None:
            try:
                given[r.id] = orjson.loads(r.served_json)
            except orjson.JSONDecodeError:  # what orjson cannot read (an integer past 64 bits): read exactly
                given[r.id] = fhirjson.loads(r.served_json)
    parsed = [_Parsed(r.id, r.patient_key, given[r.id]) for r in rows if r.id in given]
    triaged = dict(zip(given, interpret(access, session, view, parsed), strict=True)) if parsed else {}
    written: dict[bytes, tuple[bytes, dict[int, bytes]]] = {}
    strings: dict[bytes, str] = {}  # members as strings, for texts read as strings (PostgreSQL), each decoded once
    out: list[Mapping[str, Any]] = []
    for r in rows:
        text, marks = r.served_json, r.served_marks
        if text is not None and marks is not None:
            at: served.ByteMarks | None = None
            fresh = False  # added: computed here (not remembered)
            if not clinician:
                added: _Added | None = _NOTHING
            elif r.id in given:
                added = _additions(given[r.id], triaged[r.id], written)
                fresh = added is not None and r.id in keys
            else:
                added = remembered[r.id]  # remembered: the resource is not parsed at all
                at = added[2]
            if added is not None:
                meta = _METAS.get(r.received_at)
                if meta is None:
                    meta = _METAS.remember(r.received_at, versions.meta_members(1, r.received_at).encode())
                if type(text) is bytes:
                    if at is None or not served.fits(text, at):
                        found = served.utf8_marks(text, marks)
                        at = _SHAPES.get(found) or _SHAPES.remember(found, found)  # most texts share a few
                        fresh = clinician and r.id in keys
                    body: bytes | str = served.splice_at(text, at, meta, added[0], added[1])
                else:
                    body = _splice_text(str(text), marks, meta, added, strings)
                if fresh:
                    _ADDED.remember(keys[r.id], (added[0], added[1], at))
                out.append(fhirjson.Raw(body, {"resourceType": "Observation", "id": r.id}))
                continue
            # interpret changed what the marks do not foresee: this one is served parsed
            resource = fhirjson.loads(text)
            triaged[r.id] = interpret(access, session, view, [_Parsed(r.id, r.patient_key, resource)])[0]
        out.append(versions.stamp(triaged[r.id], 1, r.received_at))
    return out


def _splice_text(text: str, marks: str, meta: bytes, added: _Added, strings: dict[bytes, str]) -> str:
    """A stored text read as a string (PostgreSQL) with its meta and additions spliced in, the members decoded
    once a page (``strings``)."""

    def string(members: bytes) -> str:
        found = strings.get(members)
        if found is None:
            found = strings[members] = members.decode("utf-8")
        return found

    components = added[1]
    shown = {i: string(members) for i, members in components.items()} if components else None
    return served.splice(text, marks, string(meta), string(added[0]), shown)


# What ``interpret`` added to a reading for a clinician, as the members ``served.splice`` writes (at the top, per
# component), and where they go in its stored text as byte offsets when it was read as bytes (SQLite:
# ``served.utf8_marks``, found once; None until then)
_Added = tuple[bytes, "dict[int, bytes] | None", "served.ByteMarks | None"]
_NOTHING: _Added = (b"", None, None)
# a text's byte offsets, shared: the texts of a kind of reading have a few between them (the values' widths)
_SHAPES: Bounded[served.ByteMarks, served.ByteMarks] = Bounded(10_000)


# ``_Added`` by ``triage_keys`` (patient, reading, settings version in force): a page of remembered readings is
# spliced without parsing one resource, nor looking for where its members go. ~220 bytes an entry beside the
# additions (shared by the readings of a page that add the same) and the offsets (shared: ``_SHAPES``): 50,000 (a
# clinician's 250 series of 200) hold ~10 MB; 200,000 held up to ~65 MB a worker
_ADDED: Bounded[tuple[str, ...], _Added] = Bounded(50_000)
# a patient's monitoring settings history by (database, patient key, its highest version and when that was
# recorded): versions are only ever added (``monitoring_settings``), so the same highest version is the same
# history; a new version is a new key
_HISTORIES: Bounded[tuple[str, str, str], list[store.SettingsVersion]] = Bounded(20_000)


def _histories(session: Session, tops: Mapping[str, str] | None) -> dict[str, list[store.SettingsVersion]]:
    """The settings history of each patient in ``tops`` (key -> ``"<highest version>|<its recorded_at>"`` as the
    page read it, ``paging._settings_version``): remembered, or read and remembered when it is still that version
    (one added since the page's statement is used, not remembered under the page's key)."""
    out: dict[str, list[store.SettingsVersion]] = {}
    if not tops:
        return out
    database = str(session.get_bind().url)
    for patient_key, top in tops.items():
        key = (database, patient_key, top)
        history = _HISTORIES.get(key)
        if history is None:
            history = store.versions(session, patient_key)
            if str(history[-1].version) == top.partition("|")[0]:
                _HISTORIES.remember(key, history)
        out[patient_key] = history
    return out


# meta's members (UTF-8) by the time a reading was received (every reading of an upload shares it): a Observation's
# version is always 1, so this is all its meta needs (about 200 bytes an entry)
_METAS: Bounded[datetime, bytes] = Bounded(100_000)


def _additions(
    given: Mapping[str, Any], out: Mapping[str, Any], written: dict[bytes, tuple[bytes, dict[int, bytes]]]
) -> _Added | None:
    """What ``interpret`` added to a resource (``given`` -> ``out``) as members to splice: (at the top, per
    component); None when it changed or removed anything instead (then the resource is served parsed).
    ``written``: the members already written for this page, by content (most readings of a page add the same)."""
    if out is given:
        return _NOTHING
    changed = _changed(given, out)
    if changed is None or (changed and changed != ["component"]):
        return None
    added: dict[int, dict[str, Any]] = {}
    if changed:
        before, after = given["component"], out["component"]
        if not isinstance(before, list) or not isinstance(after, list) or len(after) != len(before):
            return None
        for index, (was, now) in enumerate(zip(before, after, strict=True)):
            if now is was:
                continue
            if not isinstance(was, dict) or not isinstance(now, dict) or _changed(was, now) != []:
                return None
            added[index] = {k: now[k] for k in now if k not in was}
    top = {k: out[k] for k in out if k not in given}
    try:  # the content as orjson writes it: a key, not what is served (fhirjson decides that)
        key: bytes | None = orjson.dumps([top, added], option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # what orjson does not write (a Decimal): written each time
        key = None
    found = written.get(key) if key is not None else None
    if found is None:
        found = (_members(top), {i: _members(members) for i, members in added.items()})
        if key is not None:
            written[key] = found
    return found[0], (found[1] if changed else None), None


def _members(members: Mapping[str, Any]) -> bytes:
    """JSON members (``"name":value,...``) as fhirjson writes them, UTF-8."""
    return fhirjson.dumps_bytes(members)[1:-1] if members else b""


def _changed(given: Mapping[str, Any], out: Mapping[str, Any]) -> list[str] | None:
    """The members of ``given`` that ``out`` holds another value for (None: ``out`` lacks one). The objects
    are compared by identity (``interpret`` copies what it changes), in C: this runs for every reading."""
    if len(out) < len(given):
        return None
    missing = object()
    kept = list(map(out.get, given, repeat(missing)))
    if any(map(is_, kept, repeat(missing))):
        return None
    return list(compress(given, map(is_not, kept, given.values())))
