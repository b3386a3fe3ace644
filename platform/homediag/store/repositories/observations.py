"""Observations: inserted idempotently on the dedup identifier (claimed in ``observation_dedup``), all of a
request's at once."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from homediag import served
from homediag.clock import to_store
from homediag.store import models as m


@cache
def _claim(dialect: str) -> Any:
    """Built once per dialect so that SQLAlchemy compiles it once (a ``.values(rows)`` statement is new
    every time and misses the compiled cache). Core, not the ORM's bulk path."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = m.ObservationDedup.__table__
    return insert(table).on_conflict_do_nothing(index_elements=["patient_key", "dedup"]).returning(table.c.dedup)


_INSERT = insert(m.Observation.__table__)


def insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert those of ``rows`` (distinct dedup keys) whose dedup key is new, two executemany statements: claim the
    keys (idempotent; a concurrent claim of the same key waits for the other transaction, then finds it), then
    insert the Observations of the keys claimed. The ids of those stored now."""
    if not rows:
        return set()
    claims = [
        {
            "patient_key": r["patient_key"],
            "dedup": r["dedup"],
            "observation_id": r["id"],
            "effective_start": r["effective_start"],
        }
        for r in rows
    ]
    claimed = set(session.execute(_claim(session.get_bind().dialect.name), claims).scalars())
    new = [r for r in rows if r["dedup"] in claimed]
    if new:
        session.execute(_INSERT, served.fill(new))  # each with the text a search serves
    return {r["id"] for r in new}


def id_by_dedup(session: Session, dedup: str, patient_key: str) -> str | None:
    return session.execute(
        select(m.ObservationDedup.observation_id).where(
            m.ObservationDedup.patient_key == patient_key, m.ObservationDedup.dedup == dedup
        )
    ).scalar_one_or_none()


def code_time_patient(session: Session, observation_id: str) -> Row[Any] | None:
    """(code, effective_start, patient_key) of a stored Observation, or None."""
    return session.execute(
        select(m.Observation.code, m.Observation.effective_start, m.Observation.patient_key).where(
            m.Observation.id == observation_id
        )
    ).one_or_none()


def observation_row(
    resource: dict[str, Any],
    *,
    primary_code: str,
    patient_key: str,
    device_id: str | None,
    effective: tuple[datetime, datetime],
    value: float | None,
    unit: str | None,
    dedup: str,
    adapter: str,
    upload_id: str | None,
    received_at: datetime | None = None,
    gateway_received_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``observation`` row for a stored Observation: the resource and the columns searches use.
    Three times are kept: the device's (in the resource), the gateway's and the platform's (``received_at``)."""
    codings = [c for c in (resource.get("code") or {}).get("coding") or [] if isinstance(c, dict)]
    return {
        "id": resource["id"],
        "patient_key": patient_key,
        "code": primary_code[:64],
        "category": " ".join(
            str(c["coding"][0].get("code"))
            for c in resource.get("category") or []
            if isinstance(c, dict) and c.get("coding")
        )[:200],
        "codes": " ".join(f"{c.get('system')}|{c.get('code')}" for c in codings),
        "effective_start": to_store(effective[0]),
        "effective_end": to_store(effective[1]),
        "device_id": device_id,
        "value": value,
        "unit": unit[:32] if unit else None,
        "status": str(resource.get("status")),
        "dedup": dedup,
        "resource": resource,
        "received_at": received_at,
        "adapter": adapter,
        "upload_id": upload_id,
        "gateway_received_at": to_store(gateway_received_at) if gateway_received_at is not None else None,
    }
