"""The audit log: one record per ingest and per access decision, in keyed hash chains (streams).

Each record's ``hash`` is HMAC-SHA256 under the audit key over the previous record's hash in its stream and
this record's fields, its stream and its place in it, so altering, removing, reordering or moving a record to
another stream breaks a chain at that point, and without the key nobody can forge a replacement chain. Each
stream's head (last place and hash) is persisted and sealed with its own HMAC, so removing a stream's newest
records and moving its head back is caught too; replaying an older sealed head is caught by the last signed
checkpoint, which holds every stream's end (``verify_checkpoint``). ``verify`` walks them.

Why several chains: one head is a point every audited request passes, locked from its write to its commit.
On PostgreSQL a writer takes any stream whose head no other transaction holds (``STREAMS`` of them), so
concurrent requests do not queue on one row; ``seq`` (a record's id, in the order ids were drawn) comes from
its sequence. SQLite has one writer at a time and uses stream 0, where ``seq`` is the record's place.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import os
import threading
import weakref
from dataclasses import dataclass, replace
from datetime import datetime
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import DateTime, Engine, TextClause, and_, bindparam, event, func, insert, select, text, update
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


def begin_write(session: Session, keys: KeyRing) -> None:
    """What a writer that appends at the end of its transaction runs first: on SQLite ``open_head`` (it takes
    the database's write lock now, so that savepoints nest in the transaction); on PostgreSQL nothing (a
    head is locked by ``append`` itself, the heads made there if missing, so readers never wait on it earlier)."""
    if session.get_bind().dialect.name != "postgresql":
        open_head(session, keys)
        session.info[_HEAD_OPEN] = True  # the records' write, at the commit, need not open it again


_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 0).with_for_update()  # SQLite: stream 0
# SQLite: the head moved from where this process last left it, or not at all (0 rows: read it, chain again). The
# statement takes the database's write lock, so the head cannot move between it and the commit.
_MOVE_KNOWN_HEAD = text(
    "update audit_head set seq = :seq, hash = :hash, mac = :mac where id = 0 and seq = :was_seq and hash = :was_hash"
)
_last_head: weakref.WeakKeyDictionary[Engine, tuple[int, str]] = weakref.WeakKeyDictionary()
"""SQLite: per database engine, the head (place, hash) this process's last append left, committed or not."""


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


_INSERT = insert(AuditEvent.__table__)  # Core, built once: compiled once
# PostgreSQL: the first stream whose head no other transaction holds, locked, with ids for the records from
# ``seq``'s sequence (an InitPlan: drawn once per statement)
_IDS = "array(select nextval('audit_event_seq_seq') from generate_series(1, :n)) as ids"
_FREE_HEAD = text(
    f"select id, seq, hash, {_IDS} from audit_head where id < :streams order by id limit 1 for update skip locked"
)
_THIS_HEAD = text(f"select id, seq, hash, {_IDS} from audit_head where id = :stream for update")


_PENDING = "homediag.audit.pending"
_HEAD_OPEN = "homediag.audit.head_open"
_AUDIT_TABLES = frozenset({AuditEvent.__tablename__, AuditHead.__tablename__})


def append(session: Session, keys: KeyRing, entries: list[Entry], *, head_open: bool = False) -> None:
    """Add records to the audit log inside the caller's transaction (they commit or roll back with it).

    The records are written just before the transaction commits, or before the next statement in it that
    reads or writes the audit tables, whichever comes first (``write_pending``): any statement that could
    see them sees them, and a chain's head is locked only from then until the commit. A reader that audits
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
    """Chain ``entries`` after a stream's head and write them: the head locked, the records inserted, it moved.

    The records are chained in memory and inserted together; the head (row-locked on PostgreSQL) moves
    once. On PostgreSQL the head is whichever stream's no other transaction holds (concurrent requests
    append to different chains and do not wait on each other), locked and read with the records' ids in one
    round trip; then the records inserted and the head moved in one statement for a request's few records,
    or one cached executemany and the head's move for more. On SQLite the records are chained after the head
    this process last left and the head moved by an update that matches only that head (it takes the
    database's write lock), then the records inserted: two statements; when it matches nothing (another
    process wrote, or the transaction that moved it rolled back), the head is read and the records chained again.
    """
    if not entries:
        return
    secret, kid = keys.audit.secret, keys.audit.kid
    if session.get_bind().dialect.name == "postgresql":
        n = {"n": len(entries)}
        head = session.execute(_FREE_HEAD, {**n, "streams": STREAMS}).first()
        if head is None:  # a new database (its heads made here, race-free), or every stream held by another
            open_head(session, keys, range(STREAMS))
            head = session.execute(_FREE_HEAD, {**n, "streams": STREAMS}).first()
        if head is None:  # all held: wait for one, a different one for each thread of each process
            stream = hash((os.getpid(), threading.get_ident())) % STREAMS
            head = session.execute(_THIS_HEAD, {**n, "stream": stream}).one()
        stream = head.id
        seq, prev, rows = _chain(secret, kid, stream, head.seq, head.hash, entries, head.ids)
        if len(rows) <= _ONE_STATEMENT_ROWS:
            head_values = {"head_stream": stream, "head_seq": seq, "head_hash": prev}
            flat = {f"{k}_{i}": v for i, row in enumerate(rows) for k, v in row.items()}
            mac = {"head_mac": _head_mac(secret, stream, seq, prev)}
            session.execute(_append_and_move(len(rows)), head_values | flat | mac)
        else:  # a multi-row VALUES is compiled anew for each size (a worklist of 500 patients: 230 ms); this is not
            session.execute(_INSERT, rows)
            session.execute(
                update(AuditHead)
                .where(AuditHead.id == stream)
                .values(seq=seq, hash=prev, mac=_head_mac(secret, stream, seq, prev))
            )
        return
    engine = _engine(session)
    known = _last_head.get(engine)
    if known is not None:  # chained after the head this process last wrote, moved only if it is still that head
        seq, prev, rows = _chain(secret, kid, 0, known[0], known[1], entries, None)
        values = {"seq": seq, "hash": prev, "mac": _head_mac(secret, 0, seq, prev), "was_seq": known[0]}
        moved = session.execute(_MOVE_KNOWN_HEAD, {**values, "was_hash": known[1]}).rowcount == 1
    if known is None or not moved:  # another process wrote since, the transaction that wrote it rolled back, or new
        # the update that matched nothing took the write lock already; else ``open_head`` takes it (as it did
        # at the transaction's start when ``begin_write`` ran)
        if known is None and not (head_open or session.info.get(_HEAD_OPEN)):
            open_head(session, keys)
        with _append_lock:
            head = session.execute(_HEAD).first()
            if head is None:  # no head yet (a new database)
                open_head(session, keys)
                head = session.execute(_HEAD).one()
            seq, prev, rows = _chain(secret, kid, 0, head.seq, head.hash, entries, None)
            session.execute(
                update(AuditHead)
                .where(AuditHead.id == 0)
                .values(seq=seq, hash=prev, mac=_head_mac(secret, 0, seq, prev))
            )
    session.execute(_INSERT, rows)
    _last_head[engine] = (seq, prev)


_COLUMNS = (
    "seq", "stream", "stream_seq", "at", "actor", "role", "purpose", "patient_key",
    "action", "entity", "outcome", "detail", "kid", "prev_hash", "hash",
)  # fmt: skip


@functools.cache
def _append_and_move(n: int) -> TextClause:
    """PostgreSQL: ``n`` records inserted and their stream's head moved, one statement; its text made once per
    ``n`` (the same statement built with ``insert().values(rows)`` in a CTE was compiled on every request:
    about a tenth of a single envelope's CPU under cProfile)."""
    values = ", ".join("(" + ", ".join(f":{c}_{i}" for c in _COLUMNS) + ")" for i in range(n))
    return text(
        f"with appended as (insert into audit_event ({', '.join(_COLUMNS)}) values {values})"
        " update audit_head set seq = :head_seq, hash = :head_hash, mac = :head_mac where id = :head_stream"
    ).bindparams(*(bindparam(f"at_{i}", type_=DateTime()) for i in range(n)))


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


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    message: str
    broken_at: int | None = None  # the place, in its stream, of the first record found wrong
    stream: int = 0


def _record(place: int, stream: int) -> str:
    return f"record {place}" if stream == 0 else f"record {place} of stream {stream}"


def verify(session: Session, keys: KeyRing) -> VerifyResult:
    """Walk each stream's chain from its start, then its head: report the first record that does not follow
    from its predecessor, or a chain that does not reach its sealed head."""
    secret, checked = keys.audit.secret, 0
    heads = {h.id: h for h in session.execute(select(AuditHead)).scalars()}
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.stream, AuditEvent.stream_seq)).scalars()
    stream: int | None = None
    prev, expected = GENESIS, 1
    for row in rows:
        if row.stream != stream:
            if stream is not None and (broken := _check_head(heads.pop(stream, None), secret, stream, expected, prev)):
                return replace(broken, checked=checked)
            stream, prev, expected = row.stream, GENESIS, 1
        where = _record(row.stream_seq, stream)
        if row.stream_seq != expected:
            message = f"{_record(expected, stream)} is missing (next record is {row.stream_seq})"
            return VerifyResult(False, checked, message, expected, stream)
        if row.prev_hash != prev:
            return VerifyResult(
                False, checked, f"{where} does not link to record {row.stream_seq - 1}", row.stream_seq, stream
            )
        if row.kid != keys.audit.kid:
            return VerifyResult(
                False, checked, f"{where} was sealed with unknown audit key {row.kid!r}", row.stream_seq, stream
            )
        if not hmac.compare_digest(
            _digest(secret, prev, row.seq, row.at, row, row.kid, stream, row.stream_seq), row.hash
        ):
            message = f"{where} was altered (its hash does not match its content, stream or place)"
            return VerifyResult(False, checked, message, row.stream_seq, stream)
        prev, expected, checked = row.hash, expected + 1, checked + 1
    if stream is not None and (broken := _check_head(heads.pop(stream, None), secret, stream, expected, prev)):
        return replace(broken, checked=checked)
    for head_id, head in sorted(heads.items()):  # streams without records: their heads must say so
        if broken := _check_head(head, secret, head_id, 1, GENESIS):
            return replace(broken, checked=checked)
    return VerifyResult(True, checked, f"audit chain intact: {checked} records")


def _check_head(head: AuditHead | None, secret: bytes, stream: int, expected: int, prev: str) -> VerifyResult | None:
    """Whether a stream's chain, ending before place ``expected`` with hash ``prev``, reaches its sealed head."""
    chain = "the chain's" if stream == 0 else f"stream {stream}'s"
    if head is None:
        return VerifyResult(
            False, 0, f"{chain} head is missing: records may have been removed from the end", expected, stream
        )
    if head.mac is None or not hmac.compare_digest(_head_mac(secret, stream, head.seq, head.hash), head.mac):
        return VerifyResult(
            False,
            0,
            f"{chain} head is not sealed by this installation's audit key: it was altered"
            " (a deployment upgraded from before 0005 has an unsealed head until its next audited action)",
            head.seq + 1,
            stream,
        )
    if head.seq != expected - 1 or head.hash != prev:
        return VerifyResult(
            False,
            0,
            f"{chain} records end at record {expected - 1} but its head says {head.seq}:"
            " records were removed from the end",
            expected,
            stream,
        )
    return None


# -- signed checkpoints ------------------------------------------------------------------------
# A checkpoint records each stream's last record (its place and hash), signed with Ed25519. Kept outside
# the database, it shows a truncated tail: records removed from the end of a stream leave a consistent
# chain, but not one that reaches the checkpoint. The signing key is derived from the audit key (HKDF), so
# it lives where the audit key lives; the public key goes with each checkpoint for third parties.
_CHECKPOINT_INFO = b"homediag audit checkpoint signing key v1"


def _signing_key(keys: KeyRing) -> Ed25519PrivateKey:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CHECKPOINT_INFO).derive(keys.audit.secret)
    return Ed25519PrivateKey.from_private_bytes(derived)


def _canonical(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def checkpoint(session: Session, keys: KeyRing) -> dict[str, object]:
    """A signed statement of where each stream's chain ends now (``homediag audit checkpoint``); ``seq`` is the
    newest record's id, for people."""
    last = (
        select(AuditEvent.stream, func.max(AuditEvent.stream_seq).label("place")).group_by(AuditEvent.stream).subquery()
    )
    ends = session.execute(
        select(AuditEvent.stream, AuditEvent.stream_seq, AuditEvent.hash)
        .join(last, and_(AuditEvent.stream == last.c.stream, AuditEvent.stream_seq == last.c.place))
        .order_by(AuditEvent.stream)
    ).all()
    newest = session.execute(select(func.max(AuditEvent.seq))).scalar_one_or_none() or 0
    payload: dict[str, object] = {
        "seq": newest,
        "streams": [[e.stream, e.stream_seq, e.hash] for e in ends],
        "at": utcnow().isoformat() + "Z",
        "kid": keys.audit.kid,
    }
    key = _signing_key(keys)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "checkpoint": payload,
        "signature": base64.b64encode(key.sign(_canonical(payload))).decode(),
        "algorithm": "Ed25519",
        "public_key": base64.b64encode(public).decode(),
    }


def _checkpoint_ends(payload: dict[str, Any]) -> list[tuple[int, int, str]]:
    """Each stream's last place and hash in a checkpoint; one made before 0007 holds the one chain's (stream 0)."""
    if "streams" not in payload:
        return [(0, int(payload["seq"]), str(payload["hash"]))]
    return [(int(s), int(n), str(h)) for s, n, h in payload["streams"]]


def verify_checkpoint(session: Session, keys: KeyRing, document: dict[str, object]) -> VerifyResult:
    """Whether every stream still reaches a checkpoint made earlier, unchanged. Run after ``verify``."""
    try:
        payload = document["checkpoint"]
        signature = base64.b64decode(str(document["signature"]), validate=True)
        assert isinstance(payload, dict)
        ends = _checkpoint_ends(payload)
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
    at, reached = payload.get("at"), 0
    for stream, place, digest in ends:
        if place == 0:
            continue
        found = session.execute(
            select(AuditEvent.hash).where(AuditEvent.stream == stream, AuditEvent.stream_seq == place)
        ).scalar_one_or_none()
        if found is None:
            last = session.execute(
                select(func.max(AuditEvent.stream_seq)).where(AuditEvent.stream == stream)
            ).scalar_one_or_none()
            last = last or 0
            return VerifyResult(
                False,
                reached,
                f"the chain was truncated: the checkpoint of {at} saw {_record(place, stream)},"
                f" the {'chain' if stream == 0 else f'stream {stream}'} now ends at record {last}",
                last + 1,
                stream,
            )
        if not hmac.compare_digest(found, digest):
            return VerifyResult(
                False,
                reached,
                f"{_record(place, stream)} is not the one the checkpoint of {at} saw: the chain was rewritten",
                place,
                stream,
            )
        reached += place
    if not reached:
        return VerifyResult(True, 0, "checkpoint of an empty chain: nothing to compare")
    return VerifyResult(
        True, reached, f"the chains reach the checkpoint of {at} ({reached} records in {len(ends)} streams) unchanged"
    )


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
