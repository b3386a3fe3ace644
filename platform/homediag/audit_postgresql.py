"""Appending to the audit chains on PostgreSQL: a writer takes whichever stream's head no other transaction holds
(row-locked, read with the records' ids in one round trip), then inserts the records and moves the head."""

from __future__ import annotations

import functools
import os
import threading

from sqlalchemy import DateTime, TextClause, bindparam, text, update
from sqlalchemy.orm import Session

from .audit_chain import STREAMS, Entry, _chain, _head_mac, open_head
from .keys import KeyRing
from .store.models import AuditEvent, AuditHead
from .store.repositories.copy import copy_rows

# PostgreSQL: the first stream whose head no other transaction holds, locked, with ids for the records from
# ``seq``'s sequence (an InitPlan: drawn once per statement)
_IDS = "array(select nextval('audit_event_seq_seq') from generate_series(1, :n)) as ids"
_FREE_HEAD = text(
    f"select id, seq, hash, {_IDS} from audit_head where id < :streams order by id limit 1 for update skip locked"
)
_THIS_HEAD = text(f"select id, seq, hash, {_IDS} from audit_head where id = :stream for update")
_ONE_STATEMENT_ROWS = 8  # up to this many records (a request's usual few) go in one statement with the head's move


def write(session: Session, keys: KeyRing, entries: list[Entry]) -> None:
    """Chain ``entries`` after a free stream's head and write them (see ``homediag.audit._write``)."""
    secret, kid = keys.audit.secret, keys.audit.kid
    n = {"n": len(entries)}
    # text statements on the session's connection: none of the ORM's execution is needed (no listener has work)
    head = session.connection().execute(_FREE_HEAD, {**n, "streams": STREAMS}).first()
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
        session.connection().execute(_append_and_move(len(rows)), head_values | flat | mac)
    else:  # more (a list's, a worklist's one per patient): one COPY (a multi-row VALUES is compiled anew per size)
        copy_rows(session, AuditEvent.__table__, _COLUMNS, [[row[c] for c in _COLUMNS] for row in rows])
        session.execute(
            update(AuditHead)
            .where(AuditHead.id == stream)
            .values(seq=seq, hash=prev, mac=_head_mac(secret, stream, seq, prev))
        )


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
