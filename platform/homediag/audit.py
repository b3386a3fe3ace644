"""The audit log: one record per ingest and per access decision, in a keyed hash chain.

Each record's ``hash`` is HMAC-SHA256 under the audit key over the previous record's hash and this
record's fields, so altering, removing or reordering a record breaks the chain at that point, and
without the key nobody can forge a replacement chain. ``verify`` walks it.
"""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .clock import utcnow
from .keys import KeyRing
from .store.models import AuditEvent, AuditHead

GENESIS = "0" * 64
# SQLite has no row locks; appends from one process queue on this lock (PostgreSQL uses FOR UPDATE).
_append_lock = threading.Lock()


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


def _digest(key: bytes, prev_hash: str, seq: int, at: datetime, e: AuditEvent | Entry, kid: str) -> str:
    body = json.dumps(
        [prev_hash, seq, at.isoformat(), e.actor, e.role, e.purpose, e.patient_key, e.action, e.entity, e.outcome, e.detail, kid],
        separators=(",", ":"),
    )
    return hmac.new(key, body.encode(), sha256).hexdigest()


def append(session: Session, keys: KeyRing, entries: list[Entry]) -> None:
    """Add records to the chain inside the caller's transaction (they commit or roll back with it)."""
    if not entries:
        return
    # Make sure the head row exists (race-free on PostgreSQL) with a write statement, before taking the
    # process lock: on SQLite that write starts the write transaction, so no one holds _append_lock
    # while waiting for a writer that waits for it.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(AuditHead).values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing(index_elements=["id"]))
    with _append_lock:
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        seq, prev = head.seq, head.hash
        for entry in entries:
            seq += 1
            at = utcnow()
            digest = _digest(keys.audit.secret, prev, seq, at, entry, keys.audit.kid)
            session.add(
                AuditEvent(
                    seq=seq, at=at, actor=entry.actor, role=entry.role, purpose=entry.purpose,
                    patient_key=entry.patient_key, action=entry.action, entity=entry.entity,
                    outcome=entry.outcome, detail=entry.detail, kid=keys.audit.kid, prev_hash=prev, hash=digest,
                )
            )
            prev = digest
        head.seq, head.hash = seq, prev
        session.flush()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    message: str
    broken_at: int | None = None


def verify(session: Session, keys: KeyRing) -> VerifyResult:
    """Walk the chain from the start; report the first record that does not follow from its predecessor."""
    prev, expected_seq, checked = GENESIS, 1, 0
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
    for row in rows:
        if row.seq != expected_seq:
            return VerifyResult(False, checked, f"record {expected_seq} is missing (next record is {row.seq})", expected_seq)
        if row.prev_hash != prev:
            return VerifyResult(False, checked, f"record {row.seq} does not link to record {row.seq - 1}", row.seq)
        if row.kid != keys.audit.kid:
            return VerifyResult(False, checked, f"record {row.seq} was sealed with unknown audit key {row.kid!r}", row.seq)
        if not hmac.compare_digest(_digest(keys.audit.secret, prev, row.seq, row.at, row, row.kid), row.hash):
            return VerifyResult(False, checked, f"record {row.seq} was altered (its hash does not match its content)", row.seq)
        prev, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != checked or head.hash != prev):
        return VerifyResult(False, checked, f"the chain ends at record {checked} but its head says {head.seq}: records were removed from the end", checked + 1)
    return VerifyResult(True, checked, f"audit chain intact: {checked} records")
