"""Devices: upserted by id (an envelope's device hash, or a PHD Device's identifier hash)."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from homediag.store import models as m

UPDATED = ("manufacturer", "model", "serial", "address", "last_seen", "identifier", "kind", "resource")


@cache
def _upsert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(m.Device.__table__)  # Core, not the ORM's bulk path
    return stmt.on_conflict_do_update(index_elements=["id"], set_={k: getattr(stmt.excluded, k) for k in UPDATED})


def upsert(session: Session, values: dict[str, Any]) -> None:
    """Insert the device, or bring a known one up to date (``first_seen`` stays)."""
    session.execute(_upsert(session.get_bind().dialect.name), values)


def upsert_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """``upsert`` of several devices in one executemany (in a stable order: callers sort by id)."""
    if rows:
        session.execute(_upsert(session.get_bind().dialect.name), rows)


def exists(session: Session, device_id: str) -> bool:
    return session.get(m.Device, device_id) is not None


def id_by_identifier(session: Session, identifier: str) -> str | None:
    """The id of the Device kept by ``identifier`` (``system|value``)."""
    return session.execute(select(m.Device.id).where(m.Device.identifier == identifier)).scalar_one_or_none()
