"""Each reading's measured values and its triage per settings content, kept in the store (``reading_values``,
``reading_triage``), so that a freshly started process reads them instead of parsing every resource and triaging
every reading again (the worklist's first view after a start).

What is kept never goes stale: an Observation never changes, so neither do its values, and a triage is keyed by
the settings content it was made under (``settings_key``): a threshold change is another key, and the readings are
triaged again under it. A reading whose triage depends on earlier readings (the weight-change rule: a back-filled
older weight changes it) is never kept (``store.Triager.cached_triage`` decides that). Rows are written by the
read that first needs them, inserted so that two processes writing the same row do not conflict, and sorted so
that two transactions writing overlapping rows wait for each other instead of deadlocking. Decides nothing: the
callers have decided what may be read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from homediag.bounded import Bounded
from homediag.clock import from_store
from homediag.store import models as m
from homediag.store.repositories import kept

from .triage import Colour, Direction, Triage, Value, Verdict, worst

_CHUNK = 500
_BY_PATIENT = 8  # a patient with this many readings not known here: read all its rows, not one by one

ReadingKey = tuple[str, str]  # (patient key, Observation id)
TriageKey = tuple[str, str, str]  # (patient key, Observation id, settings key)


def settings_key(fingerprint: str) -> str:
    """The key of a settings content (its canonical JSON text): equal for equal content, whichever patient."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()


def encode_values(values: Sequence[Value]) -> str:
    return json.dumps([[v.measure, v.value, v.unit, v.component] for v in values])


def decode_values(text: str) -> tuple[Value, ...]:
    return tuple(Value(measure, float(value), unit, component) for measure, value, unit, component in json.loads(text))


def encode_triage(found: Triage) -> str:
    return json.dumps([[v.measure, v.colour.value, v.direction.value, v.reason, v.component] for v in found.verdicts])


_COLOURS = {c.value: c for c in Colour}
_DIRECTIONS = {d.value: d for d in Direction}
# decoded triages by their text: most readings are green, and the green triages of one kind of reading are one text
_DECODED: Bounded[str, Triage] = Bounded(50_000)


def decode_triage(text: str) -> Triage:
    found = _DECODED.get(text)
    if found is None:
        verdicts = tuple(
            Verdict(measure, _COLOURS[colour], _DIRECTIONS[direction], reason, component)
            for measure, colour, direction, reason, component in json.loads(text)
        )
        found = _DECODED.remember(text, Triage(worst(v.colour for v in verdicts), verdicts))
    return found


def wanted_clauses(column_key: Any, column_id: Any, wanted: Iterable[ReadingKey]) -> list[Any]:
    """WHERE clauses, each for at most ``_CHUNK`` patients or readings, that select the ``wanted`` readings' rows:
    by patient key for a patient with many of them, else by Observation id."""
    per_patient: dict[str, list[str]] = {}
    for pkey, oid in wanted:
        per_patient.setdefault(pkey, []).append(oid)
    whole = sorted(k for k, ids in per_patient.items() if len(ids) >= _BY_PATIENT)
    single = sorted(oid for k, ids in per_patient.items() if len(ids) < _BY_PATIENT for oid in ids)
    clauses = [column_key.in_(whole[i : i + _CHUNK]) for i in range(0, len(whole), _CHUNK)]
    clauses += [column_id.in_(single[i : i + _CHUNK]) for i in range(0, len(single), _CHUNK)]
    return clauses


def recall_values(session: Session, wanted: Sequence[ReadingKey]) -> dict[ReadingKey, tuple[Value, ...]]:
    """The kept values of the ``wanted`` readings (and maybe of other readings of the same patients)."""
    out: dict[ReadingKey, tuple[Value, ...]] = {}
    table = m.ReadingValues
    for clause in wanted_clauses(table.patient_key, table.observation_id, wanted):
        for pkey, oid, text in session.execute(
            select(table.patient_key, table.observation_id, table.measured).where(clause)
        ):
            out[(pkey, oid)] = decode_values(text)
    return out


def recall_triages(session: Session, wanted: Sequence[TriageKey]) -> dict[TriageKey, Triage]:
    """The kept triages of the ``wanted`` (reading, settings) pairs (and maybe of others of the same patients)."""
    out: dict[TriageKey, Triage] = {}
    if not wanted:
        return out
    table = m.ReadingTriage
    settings = sorted({s for _, _, s in wanted})
    for clause in wanted_clauses(table.patient_key, table.observation_id, [(k, o) for k, o, _ in wanted]):
        stmt = select(table.patient_key, table.observation_id, table.settings, table.verdicts).where(
            clause, table.settings.in_(settings)
        )
        for pkey, oid, key, text in session.execute(stmt):
            out[(pkey, oid, key)] = decode_triage(text)
    return out


def keep_values(session: Session, found: Sequence[tuple[ReadingKey, Sequence[Value]]]) -> None:
    rows = sorted(
        ({"patient_key": k, "observation_id": o, "measured": encode_values(v)} for (k, o), v in found),
        key=lambda r: (r["patient_key"], r["observation_id"]),
    )
    insert_new(session, m.ReadingValues, rows)


def keep_triages(session: Session, found: Sequence[tuple[TriageKey, Triage]]) -> None:
    rows = sorted(
        (
            {"patient_key": k, "observation_id": o, "settings": s, "verdicts": encode_triage(t)}
            for (k, o, s), t in found
        ),
        key=lambda r: (r["patient_key"], r["observation_id"], r["settings"]),
    )
    insert_new(session, m.ReadingTriage, rows)


def insert_new(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert the rows that are not there yet (another process may have written the same ones meanwhile); inside
    ingest's ``kept.deferred`` block, with the other kept rows of its transaction, in one statement."""
    if not rows or kept.defer(session, table, rows):
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).on_conflict_do_nothing()
    for i in range(0, len(rows), 2_000):
        session.execute(stmt, rows[i : i + 2_000])


def prune_triages(session: Session, patient_key: str, key_at: Callable[[datetime], str]) -> int:
    """Delete the patient's kept triages that no read asks for any more: those made under a settings content other
    than the one in force at their reading's time (``key_at``: the settings key in force at an instant, under the
    patient's settings history as it is now), e.g. after a back-dated change. How many were deleted."""
    table, obs = m.ReadingTriage, m.Observation
    rows = session.execute(
        select(table.observation_id, table.settings, obs.effective_start)
        .join(obs, obs.id == table.observation_id)
        .where(table.patient_key == patient_key)
    ).all()
    stale = sorted((oid, key) for oid, key, at in rows if key != key_at(from_store(at)))
    for i in range(0, len(stale), _CHUNK):
        session.execute(
            delete(table).where(
                table.patient_key == patient_key,
                tuple_(table.observation_id, table.settings).in_(stale[i : i + _CHUNK]),
            )
        )
    return len(stale)


def prune_orphans(session: Session) -> int:
    """Delete the kept rows of patient keys that no patient has any more (a key rotation moves every patient to a
    new key: the old key's rows would never be read again). How many were deleted."""
    known = select(m.Patient.patient_key)
    deleted = 0
    for table in (m.ReadingValues, m.ReadingTriage, m.ReadingShape, m.WorklistSummary):
        deleted += session.execute(delete(table).where(table.patient_key.not_in(known))).rowcount or 0
    return deleted


__all__ = [
    "insert_new",
    "keep_triages",
    "keep_values",
    "prune_orphans",
    "prune_triages",
    "recall_triages",
    "recall_values",
    "settings_key",
    "wanted_clauses",
]


def forget() -> None:
    _DECODED.clear()
