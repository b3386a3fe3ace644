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

The code: the records and heads, and chaining (``audit_chain``); the write on each engine (``audit_postgresql``,
``audit_sqlite``); verifying and checkpoints (``audit_verify``); here, appending within a transaction and the
records as FHIR AuditEvents.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import TextClause, event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql.util import find_tables

from . import audit_postgresql, audit_sqlite
from .audit_chain import ENTITY_LENGTH as ENTITY_LENGTH
from .audit_chain import GENESIS as GENESIS
from .audit_chain import STREAMS as STREAMS
from .audit_chain import Entry as Entry
from .audit_chain import open_head as open_head
from .audit_verify import VerifyResult as VerifyResult
from .audit_verify import checkpoint as checkpoint
from .audit_verify import verify as verify
from .audit_verify import verify_checkpoint as verify_checkpoint
from .keys import KeyRing
from .store.models import AuditEvent, AuditHead


def begin_write(session: Session, keys: KeyRing) -> None:
    """What a writer that appends at the end of its transaction runs first: on SQLite ``open_head`` (it takes
    the database's write lock now, so that savepoints nest in the transaction); on PostgreSQL nothing (a
    head is locked by ``append`` itself, the heads made there if missing, so readers never wait on it earlier)."""
    if session.get_bind().dialect.name != "postgresql":
        open_head(session, keys)
        session.info[_HEAD_OPEN] = True  # the records' write, at the commit, need not open it again


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
    if session.get_bind().dialect.name == "postgresql":
        audit_postgresql.write(session, keys, entries)
    else:
        audit_sqlite.write(session, keys, entries, head_open=head_open or bool(session.info.get(_HEAD_OPEN)))


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
