"""The upload log's rows: every body a gateway sent, sealed, with its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, literal_column
from sqlalchemy.orm import Session

from homediag.store import models as m


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


def insert_many(session: Session, rows: list[dict[str, Any]]) -> int | None:
    """Finished uploads (every column given) in one executemany, through Core: no unit of work. The admission
    counter the statement saw (None when there were no rows)."""
    if not rows:
        return None
    return int(session.execute(_INSERT, rows).scalars().first())
