"""Devices: upserted by id (an envelope's device hash, or a PHD Device's identifier hash)."""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any

from sqlalchemy import case, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from homediag.store import models as m
from homediag.store.per_engine import PerEngine

UPDATED = ("manufacturer", "model", "serial", "address", "last_seen", "identifier", "kind", "resource")
# what the served Device is made of: a change of any is a new version (``last_seen`` alone is not)
SERVED = ("manufacturer", "model", "serial", "address", "identifier", "kind", "resource")


@cache
def _upsert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = m.Device.__table__
    stmt = insert(table)  # Core, not the ORM's bulk path
    changed = or_(*(table.c[k].is_distinct_from(stmt.excluded[k]) for k in SERVED))
    set_ = {k: stmt.excluded[k] for k in UPDATED}
    set_["version"] = case((changed, table.c.version + 1), else_=table.c.version)
    set_["updated_at"] = case((changed, stmt.excluded.last_seen), else_=table.c.updated_at)
    return stmt.on_conflict_do_update(index_elements=["id"], set_=set_)


def upsert(session: Session, values: dict[str, Any]) -> None:
    """Insert the device, or bring a known one up to date (``first_seen`` stays; ``version`` counts the
    changes of what the Device resource shows, ``updated_at`` is when the last one was seen)."""
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


_DEVICE_LOCK = text("select pg_advisory_xact_lock(hashtextextended(:id, 0))")


def one_writer_per_identified_device(session: Session, seen: list[dict[str, Any]]) -> None:
    """PostgreSQL: concurrent first sends of one PHD Device queue here until the first commits. Its upsert
    resolves a conflict on ``id`` only; two new rows met first on ``identifier``'s unique index raise instead
    (a 500, the bundle kept as rejected). The one audit head used to serialise these requests; with several
    audit chains nothing else does."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for device_id in sorted({v["id"] for v in seen if v.get("identifier")}):  # one order: no deadlock
        session.execute(_DEVICE_LOCK, {"id": device_id})


# -- devices this process wrote lately --------------------------------------------------------------------------
REFRESH_SECONDS = 60.0
"""How stale a device's ``last_seen`` may be: a process writes a device it wrote, unchanged, at most this often
(the upsert would only move ``last_seen`` and hold the device's row lock until the commit, which concurrent
requests from the same device wait for)."""
# per database engine (a worker's, a test's): device id -> (what was written, when, on the monotonic clock)
_RECENT: PerEngine[dict[str, tuple[tuple[Any, ...], float]]] = PerEngine(dict)
_recent = _RECENT.of
_recent_lock = threading.Lock()


def shown(values: dict[str, Any]) -> tuple[Any, ...]:
    """What a device row shows, without its times: a change of any of it is written at once."""
    return tuple((k, repr(values.get(k))) for k in SERVED)


def not_written_lately(engine: Any, rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Those of ``rows`` (by device id) this process did not write, as they are now, within ``REFRESH_SECONDS``;
    in key order."""
    recent, now = _recent(engine), time.monotonic()
    fresh = {}
    for key in sorted(rows):
        written = recent.get(key)
        if written is None or written[0] != shown(rows[key]) or now - written[1] >= REFRESH_SECONDS:
            fresh[key] = rows[key]
    return fresh


def remember_written(engine: Any, written: dict[str, tuple[Any, ...]]) -> None:
    """After the commit: the devices written (``shown`` of each), now."""
    recent, now = _recent(engine), time.monotonic()
    with _recent_lock:
        for key, served in written.items():
            recent[key] = (served, now)
