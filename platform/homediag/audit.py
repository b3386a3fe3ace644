"""The audit log: one record per ingest and per access decision, in a keyed hash chain.

Each record's ``hash`` is HMAC-SHA256 under the audit key over the previous record's hash and this
record's fields, so altering, removing or reordering a record breaks the chain at that point, and
without the key nobody can forge a replacement chain. The head (last seq and hash) is persisted and
sealed with its own HMAC, so removing the newest records and moving the head back is caught too;
replaying an older sealed head is caught by the last signed checkpoint (``verify_checkpoint``).
``verify`` walks it.
"""

from __future__ import annotations

import base64
import hmac
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import TextClause, event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.util import find_tables

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

    def __post_init__(self) -> None:
        # what a caller named may be any length (an id in a path): kept to what ``audit_event.entity`` holds
        if self.entity is not None and len(self.entity) > ENTITY_LENGTH:
            object.__setattr__(self, "entity", self.entity[: ENTITY_LENGTH - 1] + "…")


ENTITY_LENGTH = 200  # AuditEvent.entity's column


def _digest(key: bytes, prev_hash: str, seq: int, at: datetime, e: AuditEvent | Entry, kid: str) -> str:
    body = json.dumps(
        [
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
        ],
        separators=(",", ":"),
    )
    return hmac.new(key, body.encode(), sha256).hexdigest()


def _head_mac(key: bytes, seq: int, digest: str) -> str:
    """The head's seal: without the audit key nobody can move the head back to an earlier record."""
    return hmac.new(key, json.dumps(["head", seq, digest]).encode(), sha256).hexdigest()


def _dialect_insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def open_head(session: Session, keys: KeyRing) -> None:
    """Make sure the head row exists (race-free on PostgreSQL), with a write statement: on SQLite it starts
    the write transaction, so the process lock below is never held while waiting for another writer."""
    stmt = _dialect_insert(session)(AuditHead).values(
        id=1, seq=0, hash=GENESIS, mac=_head_mac(keys.audit.secret, 0, GENESIS)
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


def begin_write(session: Session, keys: KeyRing) -> None:
    """What a writer that appends at the end of its transaction runs first: on SQLite ``open_head`` (it takes
    the database's write lock now, so that savepoints nest in the transaction); on PostgreSQL nothing (the
    head is locked by ``append`` itself, made there if missing, so readers never wait on it earlier)."""
    if session.get_bind().dialect.name != "postgresql":
        open_head(session, keys)
        session.info[_HEAD_OPEN] = True  # the records' write, at the commit, need not open it again


_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
_INSERT = insert(AuditEvent.__table__)  # Core, built once: compiled once


_PENDING = "homediag.audit.pending"
_HEAD_OPEN = "homediag.audit.head_open"
_AUDIT_TABLES = frozenset({AuditEvent.__tablename__, AuditHead.__tablename__})


def append(session: Session, keys: KeyRing, entries: list[Entry], *, head_open: bool = False) -> None:
    """Add records to the chain inside the caller's transaction (they commit or roll back with it).

    The records are written just before the transaction commits, or before the next statement in it that
    reads or writes the audit tables, whichever comes first (``write_pending``): any statement that could
    see them sees them, and the chain's head is locked only from then until the commit. A reader that audits
    its search and then renders the result holds no lock that other requests wait on while it renders.
    Inside a savepoint they are written at once (a rolled-back savepoint takes them with it).
    """
    if not entries:
        return
    if session.in_nested_transaction():
        write_pending(session)
        _write(session, keys, entries, head_open=head_open)
        return
    if session.get_transaction() is None:
        session.begin()  # the records belong to a transaction: its rollback (even before any statement) drops them
    pending: list[tuple[KeyRing, list[Entry]]] = session.info.setdefault(_PENDING, [])
    pending.append((keys, list(entries)))


def write_pending(session: Session) -> None:
    """Write the records appended in this transaction and not written yet, in the order they were appended."""
    pending: list[tuple[KeyRing, list[Entry]]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    keys, entries = pending[0][0], []
    for ring, some in pending:
        if ring is not keys:  # another key ring (never, in one transaction): its records in a move of their own
            _write(session, keys, entries)
            keys, entries = ring, []
        entries += some
    _write(session, keys, entries)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint released: the records wait for the real commit
        write_pending(session)


@event.listens_for(Session, "do_orm_execute")
def _before_audit_statement(state: ORMExecuteState) -> None:
    """A statement that reads or writes the audit tables sees the records appended before it."""
    if not state.session.info.get(_PENDING):
        return
    statement = state.statement
    if isinstance(statement, TextClause) or _AUDIT_TABLES & {getattr(t, "name", None) for t in _tables(statement)}:
        write_pending(state.session)


def _tables(statement: Any) -> list[Any]:
    return find_tables(statement, include_aliases=True, include_joins=True, include_selects=True, include_crud=True)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction ended (committed: written; rolled back: gone with it)
        session.info.pop(_PENDING, None)
        session.info.pop(_HEAD_OPEN, None)


_ONE_STATEMENT_ROWS = 8  # up to this many records (a request's usual few) go in one statement with the head's move


def _write(session: Session, keys: KeyRing, entries: list[Entry], *, head_open: bool = False) -> None:
    """Chain ``entries`` after the head and write them: the head locked, the records inserted, the head moved.

    The records are chained in memory and inserted together; the head (row-locked on PostgreSQL) moves
    once. On PostgreSQL that is two round trips for a request's few records: the head locked and read, then
    the records inserted and the head moved in one statement; more records are inserted as one cached
    executemany, then the head moved.
    """
    if not entries:
        return
    secret, kid = keys.audit.secret, keys.audit.kid
    if session.get_bind().dialect.name == "postgresql":
        head = session.execute(_HEAD).first()
        if head is None:  # a new database (or a removed head, which ``verify`` reports): made race-free
            open_head(session, keys)
            head = session.execute(_HEAD).one()
        seq, prev, rows = _chain(secret, kid, head.seq, head.hash, entries)
        moved = update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev, mac=_head_mac(secret, seq, prev))
        if len(rows) <= _ONE_STATEMENT_ROWS:
            session.execute(moved.add_cte(insert(AuditEvent.__table__).values(rows).cte("appended")))
        else:  # a multi-row VALUES is compiled anew for each size (a worklist of 500 patients: 230 ms); this is not
            session.execute(_INSERT, rows)
            session.execute(moved)
        return
    if not (head_open or session.info.get(_HEAD_OPEN)):  # else ``open_head`` ran in this transaction already
        open_head(session, keys)
    with _append_lock:
        head = session.execute(_HEAD).one()
        seq, prev, rows = _chain(secret, kid, head.seq, head.hash, entries)
        session.execute(_INSERT, rows)
        session.execute(
            update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev, mac=_head_mac(secret, seq, prev))
        )


def _chain(secret: bytes, kid: str, seq: int, prev: str, entries: list[Entry]) -> tuple[int, str, list[dict[str, Any]]]:
    """The records of ``entries`` chained after record ``seq`` (hash ``prev``): the new head and the rows."""
    rows = []
    at = utcnow()
    for entry in entries:
        seq += 1
        digest = _digest(secret, prev, seq, at, entry, kid)
        rows.append(
            {
                "seq": seq,
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
    return seq, prev, rows


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
            return VerifyResult(
                False, checked, f"record {expected_seq} is missing (next record is {row.seq})", expected_seq
            )
        if row.prev_hash != prev:
            return VerifyResult(False, checked, f"record {row.seq} does not link to record {row.seq - 1}", row.seq)
        if row.kid != keys.audit.kid:
            return VerifyResult(
                False, checked, f"record {row.seq} was sealed with unknown audit key {row.kid!r}", row.seq
            )
        if not hmac.compare_digest(_digest(keys.audit.secret, prev, row.seq, row.at, row, row.kid), row.hash):
            return VerifyResult(
                False, checked, f"record {row.seq} was altered (its hash does not match its content)", row.seq
            )
        prev, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    if head is None:
        if checked:
            return VerifyResult(
                False, checked, "the chain's head is missing: records may have been removed from the end"
            )
        return VerifyResult(True, 0, "audit chain intact: 0 records")
    if head.mac is None or not hmac.compare_digest(_head_mac(keys.audit.secret, head.seq, head.hash), head.mac):
        return VerifyResult(
            False,
            checked,
            "the chain's head is not sealed by this installation's audit key: it was altered"
            " (a deployment upgraded from before 0005 has an unsealed head until its next audited action)",
            head.seq + 1,
        )
    if head.seq != checked or head.hash != prev:
        return VerifyResult(
            False,
            checked,
            f"the chain ends at record {checked} but its head says {head.seq}: records were removed from the end",
            checked + 1,
        )
    return VerifyResult(True, checked, f"audit chain intact: {checked} records")


# -- signed checkpoints ------------------------------------------------------------------------
# A checkpoint records the chain's last record (seq and hash), signed with Ed25519. Kept outside
# the database, it shows a truncated tail: records removed from the end leave a consistent chain,
# but not one that reaches the checkpoint. The signing key is derived from the audit key (HKDF), so
# it lives where the audit key lives; the public key goes with each checkpoint for third parties.
_CHECKPOINT_INFO = b"homediag audit checkpoint signing key v1"


def _signing_key(keys: KeyRing) -> Ed25519PrivateKey:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CHECKPOINT_INFO).derive(keys.audit.secret)
    return Ed25519PrivateKey.from_private_bytes(derived)


def _canonical(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def checkpoint(session: Session, keys: KeyRing) -> dict[str, object]:
    """A signed statement of where the chain ends now (``homediag audit checkpoint``)."""
    last = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    seq, digest = (last.seq, last.hash) if last else (0, GENESIS)
    payload: dict[str, object] = {"seq": seq, "hash": digest, "at": utcnow().isoformat() + "Z", "kid": keys.audit.kid}
    key = _signing_key(keys)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "checkpoint": payload,
        "signature": base64.b64encode(key.sign(_canonical(payload))).decode(),
        "algorithm": "Ed25519",
        "public_key": base64.b64encode(public).decode(),
    }


def verify_checkpoint(session: Session, keys: KeyRing, document: dict[str, object]) -> VerifyResult:
    """Whether the chain still reaches a checkpoint made earlier, unchanged. Run after ``verify``."""
    try:
        payload = document["checkpoint"]
        signature = base64.b64decode(str(document["signature"]), validate=True)
        assert isinstance(payload, dict)
        seq, digest = int(payload["seq"]), str(payload["hash"])
    except (KeyError, ValueError, TypeError, AssertionError):
        return VerifyResult(False, 0, "the checkpoint file is not a homediag audit checkpoint")
    try:
        _signing_key(keys).public_key().verify(signature, _canonical(payload))
    except InvalidSignature:
        return VerifyResult(
            False,
            0,
            "the checkpoint's signature does not verify with this installation's audit key:"
            " it was altered or made elsewhere",
        )
    if seq == 0:
        return VerifyResult(True, 0, "checkpoint of an empty chain: nothing to compare")
    row = session.get(AuditEvent, seq)
    if row is None:
        last = (
            session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one_or_none() or 0
        )
        return VerifyResult(
            False,
            last,
            f"the chain was truncated: the checkpoint of {payload.get('at')} saw record {seq},"
            f" the chain now ends at record {last}",
            last + 1,
        )
    if not hmac.compare_digest(row.hash, digest):
        return VerifyResult(
            False,
            seq,
            f"record {seq} is not the one the checkpoint of {payload.get('at')} saw: the chain was rewritten",
            seq,
        )
    return VerifyResult(True, seq, f"the chain reaches the checkpoint of {payload.get('at')} (record {seq}) unchanged")


# -- AuditEvent resources for administrators ---------------------------------------------------
_OUTCOME = {"permit": "0", "created": "0", "duplicate": "0", "done": "0", "exists": "0", "deny": "4", "rejected": "4"}
_OUTCOME["error"] = "8"  # an export job that failed
_ACTION = {
    "read": "R",
    "search": "E",
    "re-identify": "R",
    "ingest": "C",
    "enrol": "C",
    "consent-create": "C",
    "consent-update": "U",
}


def as_fhir(row: AuditEvent, patient_id: str | None) -> dict[str, object]:
    """An audit record as a FHIR R4 AuditEvent (IHE Basic Audit Log Patterns in spirit)."""
    agent: dict[str, object] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                    "code": "humanuser" if not row.actor.startswith(("gateway-", "vendor-")) else "dataprocessor",
                }
            ]
        },
        "who": {"identifier": {"system": "https://homediag.example.org/fhir/sid/user", "value": row.actor}},
        "role": [{"text": row.role}],
        "requestor": True,
    }
    if row.purpose:
        agent["purposeOfUse"] = [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": row.purpose}]}
        ]
    entities: list[dict[str, object]] = []
    if patient_id:
        entities.append(
            {
                "what": {"reference": f"Patient/{patient_id}"},
                "role": {
                    "system": "http://terminology.hl7.org/CodeSystem/object-role",
                    "code": "1",
                    "display": "Patient",
                },
            }
        )
    if row.entity:
        entities.append(
            {"what": {"display": row.entity}, "description": row.detail or None}
            if row.detail
            else {"what": {"display": row.entity}}
        )
    resource: dict[str, object] = {
        "resourceType": "AuditEvent",
        "id": str(row.seq),
        "type": {"system": "https://homediag.example.org/fhir/CodeSystem/audit-action", "code": row.action},
        "action": _ACTION.get(row.action, "E"),
        "recorded": row.at.isoformat(timespec="milliseconds") + "Z",
        "outcome": _OUTCOME.get(row.outcome, "0"),
        "outcomeDesc": row.outcome + (f": {row.detail}" if row.detail else ""),
        "agent": [agent],
        "source": {
            "observer": {"display": "homediag"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "extension": [
            {
                "url": "https://homediag.example.org/fhir/StructureDefinition/audit-chain",
                "valueString": f"{row.seq}:{row.hash}",
            }
        ],
    }
    if entities:
        resource["entity"] = entities
    return resource
