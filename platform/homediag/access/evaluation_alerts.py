"""The SQL behind an evaluation's alerts and acknowledgements: the readings monitoring triages red or yellow,
and each reading's first acknowledgement, for readings in a scope the caller (``access/evaluation.py``) decided.
Nothing here decides or audits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from homediag.bounded import Bounded
from homediag.clock import from_store
from homediag.monitoring import store as monitoring_store
from homediag.monitoring.triage import Colour, measures_of
from homediag.store import models as m


def triaged_alerts(
    session: Session, keys: list[str], scope: ColumnElement[bool], memo: Memo
) -> dict[str, tuple[str, datetime, Any]]:
    """The readings in ``scope`` of the patients ``keys`` that monitoring triages red or yellow: each patient's
    ``Triager`` (its settings history and earlier weights, ``homediag.monitoring``) on each reading's values, read
    from the stored JSON's code, value and components only. Not through monitoring's per-process caches, which
    would keep every reading of a large export in memory."""
    o = m.Observation
    span = session.execute(
        select(func.min(o.effective_start), func.max(o.effective_start)).where(o.patient_key.in_(keys), scope)
    ).one()
    if span[0] is None:
        return {}
    start, end = from_store(span[0]), from_store(span[1]) + timedelta(seconds=1)
    triagers = {k: monitoring_store.triager(session, k, start, end, scope) for k in keys}
    stmt = (
        select(o.id, o.patient_key, o.effective_start, _slim(session.get_bind().dialect.name))
        .where(o.patient_key.in_(keys), scope)
        .order_by(o.patient_key, o.effective_start, o.id)
    )
    out: dict[str, tuple[str, datetime, Any]] = {}
    for oid, pkey, effective, text in session.execute(stmt):
        values = memo.values.get(text)
        if values is None:
            values = memo.values.remember(text, tuple(measures_of(_unslim(text))) if text else ())
        if not values:
            continue
        at = from_store(effective)
        triager = triagers[pkey]
        version = monitoring_store.in_force(triager.history, at)
        if version.settings.thresholds.weight_change is not None and any(v.measure == "weight" for v in values):
            result, _ = triager.triage(values, at)  # the weight rule looks at earlier weights: never remembered
        else:  # otherwise a triage depends only on the values and the settings in force (as cached_triage)
            result = memo.triages.get((version.fingerprint, values))
            if result is None:
                result = memo.triages.remember((version.fingerprint, values), triager.triage(values, at)[0])
        if result.colour in (Colour.RED, Colour.YELLOW):
            out[oid] = (pkey, at, result)
    return out


@dataclass
class Memo:
    """Within one export part: the values of a slim JSON text, and the triage of values under a settings version
    (many readings share both), bounded."""

    values: Bounded[Any, Any] = field(default_factory=lambda: Bounded(100_000))
    triages: Bounded[Any, Any] = field(default_factory=lambda: Bounded(100_000))


def _slim(dialect: str) -> ColumnElement[Any]:
    """What ``measures_of`` reads of a stored Observation (its code, valueQuantity and components) as the JSON text
    of a three-element array, built in SQL with one parse of the resource (``_unslim`` makes it a resource)."""
    o = m.Observation
    if dialect == "postgresql":
        doc = type_coerce(o.resource, JSONB)
        return cast(func.jsonb_build_array(doc["code"], doc["valueQuantity"], doc["component"]), Text)
    return func.json_extract(o.resource, "$.code", "$.valueQuantity", "$.component")


def _unslim(text: str) -> dict[str, Any]:
    code, quantity, components = json.loads(text)
    return {"code": code, "valueQuantity": quantity, "component": components}


def first_acknowledgements(
    session: Session, scope: ColumnElement[bool], ids: list[str] | None
) -> dict[str, tuple[datetime, datetime | None, datetime, Any]]:
    """Observation id -> (reading time, arrival, first acknowledgement, its review item with the review's scope),
    aware UTC, for the readings in ``scope`` (and ``ids``, when given)."""
    item, review = m.ReviewItem, m.Review
    stmt = (
        select(
            item.observation_id,
            item.patient_key,
            item.colour,
            item.effective_at,
            item.received_at,
            item.reviewed_at,
            review.scope,
        )  # fmt: skip
        .join(review, review.id == item.review_id)
        .join(m.Observation, m.Observation.id == item.observation_id)  # each item to its reading: by primary key
        .where(scope)
        .order_by(item.observation_id, item.reviewed_at, item.review_id)
    )
    out: dict[str, tuple[datetime, datetime | None, datetime, Any]] = {}
    chunks = [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
    for chunk in chunks:
        query = stmt if chunk is None else stmt.where(item.observation_id.in_(chunk))
        for row in session.execute(query):
            if row.observation_id not in out:
                received = from_store(row.received_at) if row.received_at is not None else None
                out[row.observation_id] = (from_store(row.effective_at), received, from_store(row.reviewed_at), row)
    return out
