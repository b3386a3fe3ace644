"""An evaluation's alerts and acknowledgements: the readings monitoring triages red or yellow (on the values the
one pass over a part's readings parsed, ``access/evaluation_pass.py``), and each reading's first acknowledgement,
for readings in a scope the caller (``access/evaluation.py``) decided. Nothing here decides or audits."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from homediag.bounded import Bounded
from homediag.clock import from_store
from homediag.monitoring import store as monitoring_store
from homediag.monitoring.triage import Colour
from homediag.store import models as m

from .evaluation_pass import Chunk, aware


def triaged(session: Session, chunk: Chunk, scope: ColumnElement[bool], memo: Memo) -> dict[int, tuple[datetime, Any]]:
    """The readings of ``chunk`` (read in ``scope``) that monitoring triages red or yellow, by their index in
    ``chunk.rows``: each patient's ``Triager`` (its settings history and earlier weights, ``homediag.monitoring``)
    on each reading's values. Not through monitoring's per-process caches, which would keep every reading of a
    large export in memory."""
    start, last = chunk.span
    end = last + timedelta(seconds=1)
    keys = sorted({r.patient_key for r in chunk.rows})
    triagers = {k: monitoring_store.triager(session, k, start, end, scope) for k in keys}
    out: dict[int, tuple[datetime, Any]] = {}
    for i, row in enumerate(chunk.rows):
        values = row.values
        if not values:
            continue
        triager = triagers[row.patient_key]
        at = aware(row.effective) if len(triager.history) > 1 else None
        version = monitoring_store.in_force(triager.history, at) if at is not None else triager.history[0]
        if triager.looks_back(version, values):
            at = at or aware(row.effective)
            result, _ = triager.triage(values, at)  # the weight rule looks at earlier weights: never remembered
        else:  # otherwise a triage depends only on the values and the settings in force (as cached_triage)
            result = memo.triages.get((version.fingerprint, values))
            if result is None:
                at = at or aware(row.effective)
                result = memo.triages.remember((version.fingerprint, values), triager.triage(values, at)[0])
        if result.colour in (Colour.RED, Colour.YELLOW):
            out[i] = (at or aware(row.effective), result)
    return out


@dataclass
class Memo:
    """Within one export part: the triage of values under a settings version (many readings share both),
    bounded."""

    triages: Bounded[Any, Any] = field(default_factory=lambda: Bounded(100_000))


def first_acknowledgements(
    session: Session, keys: list[str], scope: ColumnElement[bool] | None, ids: Collection[str] | None = None
) -> dict[str, tuple[datetime, datetime | None, datetime, Any]]:
    """Observation id -> (reading time, arrival, first acknowledgement, its review item with the review's scope),
    aware UTC, for the review items of the patients ``keys`` (a review item is its reading's patient's) whose
    readings are in ``scope``, and only of ``ids`` when given. ``scope`` None: the caller gives ``ids``, readings
    it read in its scope itself (the alerts), and no reading is joined. One query, driven by the items' patient
    index: the items are few beside the readings (PostgreSQL otherwise scanned the part's readings per query)."""
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
        .where(item.patient_key.in_(keys))
    )
    if scope is not None:  # each item to its reading: by primary key
        stmt = stmt.join(m.Observation, m.Observation.id == item.observation_id).where(scope)
    out: dict[str, tuple[datetime, datetime | None, datetime, Any]] = {}
    for row in session.execute(stmt.order_by(item.observation_id, item.reviewed_at, item.review_id)):
        if row.observation_id not in out and (ids is None or row.observation_id in ids):
            received = from_store(row.received_at) if row.received_at is not None else None
            out[row.observation_id] = (from_store(row.effective_at), received, from_store(row.reviewed_at), row)
    return out
