"""Observations: inserted idempotently on the dedup identifier (claimed in ``observation_dedup``), all of a
request's at once.

On PostgreSQL the claim is one ``INSERT … SELECT FROM unnest(…)`` (four array parameters, whatever the number of
rows) and the Observations claimed are written by one ``COPY`` (one statement for the server: the partition routing,
the parse and the plan paid once, not per row; no multi-row query text for the driver to parse, and the resource
sent as the text ``served`` made for it, not serialised a second time). On SQLite (in process, no round trip) the
claim is one ``INSERT … SELECT FROM json_each(…) … RETURNING`` and the Observations one executemany of the driver
(``many.insert_rows``), the resource written from the same text and stored once: ``served_json`` NULL, a search
reads the served text from the resource (``homediag.served``: SQLite's JSON column is that text).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session

from homediag import served
from homediag.clock import to_store
from homediag.store import models as m

from . import many
from .copy import bulk_rows

# Core, built once: compiled once (a ``.values(rows)`` statement is new every time and misses the compiled cache)
_DEDUP = m.ObservationDedup.__table__
# SQLite: the claims one JSON parameter, read back in the order given (one statement and one parameter whatever the
# number of rows: no multi-row ``VALUES`` built by SQLAlchemy per call, no parameter dict per row). ``WHERE true``:
# SQLite's grammar for an upsert after a ``SELECT``
_CLAIM_SQLITE = text(
    "INSERT INTO observation_dedup (patient_key, dedup, observation_id, effective_start)"
    " SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'),"
    " json_extract(j.value, '$[3]') FROM json_each(:rows) AS j WHERE true ORDER BY j.key"
    " ON CONFLICT (patient_key, dedup) DO NOTHING RETURNING dedup"
)
# the keys in the order given (``unnest`` keeps it): concurrent claims of shared keys wait, they do not deadlock
_CLAIM_PG = text(
    "INSERT INTO observation_dedup (patient_key, dedup, observation_id, effective_start)"
    " SELECT * FROM unnest(CAST(:patient_key AS text[]), CAST(:dedup AS text[]), CAST(:observation_id AS text[]),"
    " CAST(:effective_start AS timestamp[]))"
    " ON CONFLICT (patient_key, dedup) DO NOTHING RETURNING dedup"
)
COLUMNS = tuple(c.name for c in m.Observation.__table__.columns if c.name != "txn")  # txn: PostgreSQL's default
# the resource given as the text ``served`` wrote for it (the engine's serialiser, ``fhirjson.dumps``): not again
_RESOURCE = frozenset({"resource"})
_SERVED_AT = COLUMNS.index("served_json")


def insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert those of ``rows`` (distinct dedup keys) whose dedup key is new, two executemany statements: claim the
    keys (idempotent; a concurrent claim of the same key waits for the other transaction, then finds it), then
    insert the Observations of the keys claimed. The ids of those stored now."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        claimed = set(
            session.execute(
                _CLAIM_PG,
                {
                    "patient_key": [r["patient_key"] for r in rows],
                    "dedup": [r["dedup"] for r in rows],
                    "observation_id": [r["id"] for r in rows],
                    "effective_start": [r["effective_start"] for r in rows],
                },
            ).scalars()
        )
    else:
        claimed = set(session.execute(_CLAIM_SQLITE, {"rows": _claims_json(session, rows)}).scalars())
    new = [r for r in rows if r["dedup"] in claimed]
    served.fill([r for r in new if "served_json" not in r])  # each with the text a search serves (unless made ahead)
    if new:
        values = [[r["served_json"] if c == "resource" else r[c] for c in COLUMNS] for r in new]
        if served.stored_once(dialect):  # SQLite: the resource is that text, and read as it
            for row in values:
                row[_SERVED_AT] = None
        bulk_rows(session, m.Observation.__table__, COLUMNS, values, raw=_RESOURCE)
    return {r["id"] for r in new}


def _claims_json(session: Session, rows: list[dict[str, Any]]) -> str:
    """SQLite: the claims of ``rows`` as one JSON array of [patient key, dedup, observation id, effective start], the
    time as the text its column stores (the column type's bind processing)."""
    stored_time = many.processors(_DEDUP, ("effective_start",), session.get_bind().dialect)[0] or (lambda v: v)
    return orjson.dumps(
        [[r["patient_key"], r["dedup"], r["id"], stored_time(r["effective_start"])] for r in rows]
    ).decode()


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
