"""Observations: inserted idempotently on the dedup identifier, all of a request's in one statement."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from homediag.store import models as m


@cache
def _insert(dialect: str) -> Any:
    """Built once per dialect so that SQLAlchemy compiles it once (a ``.values(rows)`` statement is new
    every time and misses the compiled cache)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = m.Observation.__table__  # Core, not the ORM's bulk path
    return insert(table).on_conflict_do_nothing(index_elements=["dedup"]).returning(table.c.id)


def insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert ``rows`` (one statement); the ids of those that were new (the others were stored already)."""
    if not rows:
        return set()
    return set(session.execute(_insert(session.get_bind().dialect.name), rows).scalars())


def id_by_dedup(session: Session, dedup: str, patient_key: str) -> str | None:
    return session.execute(
        select(m.Observation.id).where(m.Observation.dedup == dedup, m.Observation.patient_key == patient_key)
    ).scalar_one_or_none()


def code_time_patient(session: Session, observation_id: str) -> Row[Any] | None:
    """(code, effective_start, patient_key) of a stored Observation, or None."""
    return session.execute(
        select(m.Observation.code, m.Observation.effective_start, m.Observation.patient_key).where(
            m.Observation.id == observation_id
        )
    ).one_or_none()
