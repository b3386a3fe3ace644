"""A list's rows written at once (on SQLite by the driver's executemany, on PostgreSQL by COPY) read back as the same
rows written one at a time through SQLAlchemy: the times (found again by a query on them), JSON null, the bytes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.store.repositories import uploads

TIMES = [
    datetime(2026, 12, 1, 8, 0, 0),  # no microseconds: still stored as SQLAlchemy stores it, so a query finds it
    datetime(2026, 12, 1, 8, 0, 0, 1),
    datetime(1999, 12, 31, 23, 59, 59, 999_999),
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC).replace(tzinfo=None),
]


def _upload(received_at: datetime, n: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "received_at": received_at,
        "sender": "gateway-1",
        "adapter": "ble-blood-pressure",
        "device_id": None,
        "patient_key": f"pk{n}",
        "kid": "k1",
        "nonce": bytes([n, 0, 255]),
        "sealed": b"\x00sealed\xff" * (n + 1),
        "redacted": None if n % 2 else {"patient": {"value": "REDACTED"}, "n": n, "text": "æøå \u00e9"},
        "outcome": "created",
        "created": n,
        "duplicates": 0,
        "rejected": 0,
        "issues": None,
        "vendor": None,
    }


def _read(rt: Runtime, ids: list[str]) -> list[tuple[Any, ...]]:
    u = m.Upload
    with rt.sessions() as session:
        found = {
            row.id: row
            for row in session.execute(
                select(u.id, u.received_at, u.nonce, u.sealed, u.redacted, u.issues, u.adapter, u.device_id).where(
                    u.id.in_(ids)
                )
            )
        }
        return [tuple(found[i])[1:] for i in ids]


def test_a_lists_rows_read_back_as_rows_written_one_at_a_time(runtime: Runtime) -> None:
    many = [_upload(t, n) for n, t in enumerate(TIMES)]
    ones = [_upload(t, n) for n, t in enumerate(TIMES)]
    with runtime.sessions.begin() as session:
        uploads.insert_many(session, many)  # the list's path
        for row in ones:
            uploads.insert_many(session, [row])  # one row: an INSERT through SQLAlchemy
    assert _read(runtime, [r["id"] for r in many]) == _read(runtime, [r["id"] for r in ones])
    with runtime.sessions() as session:
        for t in TIMES:  # a query binding the time finds both: the stored text is the same
            at = session.execute(select(m.Upload.patient_key).where(m.Upload.received_at == t)).scalars().all()
            assert len(at) == 2
