"""The audit chains' records and heads: what is hashed and sealed, and how records are chained in memory
(``homediag.audit`` appends them; ``audit_postgresql`` and ``audit_sqlite`` write them; ``audit_verify`` walks them).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .clock import utcnow
from .keys import KeyRing
from .store.models import AuditEvent, AuditHead

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    actor: str
    role: str
    action: str
    outcome: str
    purpose: str | None = None
    patient_key: str | None = None
    entity: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        # what a caller named may be any length (an id in a path): kept to what ``audit_event.entity`` holds
        if self.entity is not None and len(self.entity) > ENTITY_LENGTH:
            object.__setattr__(self, "entity", self.entity[: ENTITY_LENGTH - 1] + "…")


ENTITY_LENGTH = 200  # AuditEvent.entity's column


STREAMS = 16
"""How many chains (streams) PostgreSQL writers spread over: a writer takes whichever stream's head no other
transaction holds, so up to this many requests append at once. SQLite (one writer at a time) uses stream 0."""


def _digest(
    key: bytes, prev_hash: str, seq: int, at: datetime, e: AuditEvent | Entry, kid: str, stream: int, stream_seq: int
) -> str:
    fields: list[object] = [
        prev_hash,
        seq,
        at.isoformat(),
        e.actor,
        e.role,
        e.purpose,
        e.patient_key,
        e.action,
        e.entity,
        e.outcome,
        e.detail,
        kid,
    ]
    if stream != 0 or stream_seq != seq:
        # a record's stream and place in it; left out where they add nothing (stream 0, numbered as its place),
        # which is how every record before 0007 was hashed, so those verify unchanged
        fields += [stream, stream_seq]
    return hmac.new(key, json.dumps(fields, separators=(",", ":")).encode(), sha256).hexdigest()


def _head_mac(key: bytes, stream: int, seq: int, digest: str) -> str:
    """A head's seal: without the audit key nobody can move a head back, or put it on another stream."""
    body = ["head", seq, digest] if stream == 0 else ["head", stream, seq, digest]
    return hmac.new(key, json.dumps(body).encode(), sha256).hexdigest()


def _dialect_insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def open_head(session: Session, keys: KeyRing, streams: range = range(1)) -> None:
    """Make sure the heads of ``streams`` exist (race-free on PostgreSQL), with a write statement: on SQLite
    it starts the write transaction, so the process lock below is never held while waiting for another writer."""
    secret = keys.audit.secret
    rows = [{"id": s, "seq": 0, "hash": GENESIS, "mac": _head_mac(secret, s, 0, GENESIS)} for s in streams]
    session.execute(_dialect_insert(session)(AuditHead).values(rows).on_conflict_do_nothing(index_elements=["id"]))


_INSERT = insert(AuditEvent.__table__)  # Core, built once: compiled once


def _chain(
    secret: bytes, kid: str, stream: int, at_seq: int, prev: str, entries: list[Entry], ids: list[int] | None
) -> tuple[int, str, list[dict[str, Any]]]:
    """The records of ``entries`` chained after place ``at_seq`` (hash ``prev``) of ``stream``: the new head and
    the rows. ``ids`` number the records (PostgreSQL's sequence); without them a record's id is its place."""
    rows = []
    at = utcnow()
    for i, entry in enumerate(entries):
        at_seq += 1
        seq = ids[i] if ids is not None else at_seq
        digest = _digest(secret, prev, seq, at, entry, kid, stream, at_seq)
        rows.append(
            {
                "seq": seq,
                "stream": stream,
                "stream_seq": at_seq,
                "at": at,
                "actor": entry.actor,
                "role": entry.role,
                "purpose": entry.purpose,
                "patient_key": entry.patient_key,
                "action": entry.action,
                "entity": entry.entity,
                "outcome": entry.outcome,
                "detail": entry.detail,
                "kid": kid,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return at_seq, prev, rows
