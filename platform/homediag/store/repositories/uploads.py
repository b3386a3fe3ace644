"""The upload log's rows: every body a gateway sent, sealed, with its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, literal_column, text
from sqlalchemy.orm import Session

from homediag.store import models as m

from .copy import bulk_rows


def add(
    session: Session,
    *,
    upload_id: str,
    received_at: datetime,
    sender: str,
    adapter: str | None,
    sealed: tuple[str, bytes, bytes],
    redacted: Any,
) -> m.Upload:
    """A new upload, ``pending`` until the write path finishes it."""
    kid, nonce, ciphertext = sealed
    upload = m.Upload(
        id=upload_id,
        received_at=received_at,
        sender=sender,
        adapter=adapter,
        kid=kid,
        nonce=nonce,
        sealed=ciphertext,
        redacted=redacted,
        outcome="pending",
        created=0,
        duplicates=0,
        rejected=0,
    )
    session.add(upload)
    return upload


# Core, built once: compiled once. Each row returns the admission counter its statement saw (no round trip of its
# own: ``homediag.ingest.admission``); its expression is the migration's, written out so the store needs no ingest
ADMISSION_VERSION = "coalesce((select n from admission_version where id = 0), -1)"
_INSERT = insert(m.Upload.__table__).returning(literal_column(ADMISSION_VERSION))
_VERSION = text(f"select {ADMISSION_VERSION}")
_COLUMNS = tuple(c.name for c in m.Upload.__table__.columns)


def insert_many(session: Session, rows: list[dict[str, Any]]) -> int | None:
    """Finished uploads (every column given) through Core: no unit of work. The admission counter seen as they
    were written (None when there were no rows): for one row by the statement that inserts it; for more (a list's
    uploads: on PostgreSQL one ``COPY``, ``copy.copy_rows``; on SQLite one executemany of the driver,
    ``many.insert_rows``) by the statement just after it in the same transaction (a counter read later than the
    rows' write: never one that let a stale admission through)."""
    if not rows:
        return None
    if len(rows) > 1:
        bulk_rows(session, m.Upload.__table__, _COLUMNS, [[row[c] for c in _COLUMNS] for row in rows])
        return int(session.execute(_VERSION).scalar_one())
    return int(session.execute(_INSERT, rows).scalars().first())
