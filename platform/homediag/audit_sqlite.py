"""Appending to the audit chain on SQLite (stream 0, one writer at a time): the records chained after the head this
process's last append left, the head moved by an update that matches only that head, then the records inserted."""

from __future__ import annotations

import threading
import weakref

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from .audit_chain import Entry, _chain, _head_mac, open_head
from .keys import KeyRing
from .store.models import AuditEvent, AuditHead
from .store.repositories import many

# SQLite has no row locks; appends from one process queue on this lock (PostgreSQL uses FOR UPDATE).
_append_lock = threading.Lock()

_EVENTS = AuditEvent.__table__

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


def write(session: Session, keys: KeyRing, entries: list[Entry], *, head_open: bool) -> None:
    """Chain ``entries`` after the head and write them (see ``homediag.audit._write``); ``head_open``: this
    transaction made sure of the head already (``audit.begin_write``)."""
    secret, kid = keys.audit.secret, keys.audit.kid
    engine = _engine(session)
    known = _last_head.get(engine)
    if known is not None:  # chained after the head this process last wrote, moved only if it is still that head
        seq, prev, rows = _chain(secret, kid, 0, known[0], known[1], entries, None)
        values = {"seq": seq, "hash": prev, "mac": _head_mac(secret, 0, seq, prev), "was_seq": known[0]}
        # on the session's connection: a text statement needs none of the ORM's execution (no listener has work)
        moved = session.connection().execute(_MOVE_KNOWN_HEAD, {**values, "was_hash": known[1]}).rowcount == 1
    if known is None or not moved:  # another process wrote since, the transaction that wrote it rolled back, or new
        # the update that matched nothing took the write lock already; else ``open_head`` takes it (as it did
        # at the transaction's start when ``begin_write`` ran)
        if known is None and not head_open:
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
    if rows:  # one executemany of the driver: no SQLAlchemy parameter dict per record (``many.insert_rows``)
        columns = tuple(rows[0])
        many.insert_rows(session, _EVENTS, columns, [[row[c] for c in columns] for row in rows])
    _last_head[engine] = (seq, prev)
