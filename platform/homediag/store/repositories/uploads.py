"""The upload log's rows: every body a gateway sent, sealed, with its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
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


_INSERT = insert(m.Upload.__table__)  # Core, built once: compiled once


def insert_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Finished uploads (every column given) in one executemany, through Core: no unit of work."""
    if rows:
        session.execute(_INSERT, rows)
