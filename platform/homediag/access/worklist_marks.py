"""The worklist's marks (``marks``): per patient, what its kept summary was computed from (``worklist_kept``), read
for hundreds of patients in one statement; a summary is used again only while its mark is unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, case, cast, func, literal, null, select, union_all
from sqlalchemy.orm import Session

from homediag.clock import to_store
from homediag.store import key_lists
from homediag.store import models as m
from homediag.store.key_lists import among

from .readings import aware
from .view import Window


def marks(session: Session, windows: dict[str, Window], now: datetime) -> dict[str, tuple[Any, ...]]:
    """Per patient, what its summary was computed from, in a few grouped statements: its consent window, how many
    Observations it has, its acknowledgements and reviews (how many, the last), its settings versions (how many,
    the last); last, the first Observation dated after ``now`` (its status changes when that time comes).
    Observations are counted whatever the window (the window is part of the mark): a stored Observation is
    never changed (a key rotation moves it to a new patient key, which is not in the memo), so a new one is a
    higher count. The count is the one database triggers keep in ``observation_count`` as any path writes or
    deletes rows (migration 0015), not a count of the rows; the first reading dated ahead is looked for only
    for the patients whose latest stored reading is dated after ``now``."""
    keys = list(windows)
    # the kept count and latest time (one row per patient); the three others grouped by patient, all four in
    # one statement (their third column as text: the settings version is turned back into its number)
    obs, counted = m.Observation, m.ObservationCount
    stored_now = to_store(now)
    ahead: list[str] = []
    observations: dict[str, tuple[Any, ...]] = {}
    grouped: list[dict[str, tuple[Any, ...]]] = [{}, {}, {}]
    for chunk in key_lists.chunks(session, keys):
        of = key_lists.sharing(session, chunk)  # the four selects share the chunk's keys
        parts = [
            select(literal(0), counted.patient_key, counted.observations, counted.latest, null().cast(String)).where(
                of(counted.patient_key)
            )
        ]
        for n, (table, at, top) in enumerate(
            (
                (m.ReviewItem, m.ReviewItem.reviewed_at, m.ReviewItem.observation_id),
                (m.Review, m.Review.reviewed_at, m.Review.id),
                (m.MonitoringSettings, m.MonitoringSettings.recorded_at, m.MonitoringSettings.version),
            ),
            start=1,
        ):
            parts.append(
                select(literal(n), table.patient_key, func.count(), func.max(at), cast(func.max(top), String))
                .where(of(table.patient_key))
                .group_by(table.patient_key)
            )
        for n, k, count, at, top in session.execute(union_all(*parts)):
            if n == 0:
                observations[k] = (count, None)
                if at is not None and at > stored_now:
                    ahead.append(k)
            else:
                grouped[n - 1][k] = (count, at, int(top) if n == 3 else top)
    if ahead:  # the first reading dated after now, in the index ix_observation_series (rare: a clock ahead)
        later = case((obs.effective_start > stored_now, obs.effective_start))
        for chunk in key_lists.chunks(session, ahead):
            query = select(obs.patient_key, func.min(later)).where(among(session, obs.patient_key, chunk))
            for k, first in session.execute(query.group_by(obs.patient_key)):
                observations[k] = (observations[k][0], aware(first))
    out: dict[str, tuple[Any, ...]] = {}
    for k, window in windows.items():
        count, first = observations.get(k, (0, None))
        out[k] = (window, count, *(g.get(k) for g in grouped), first)
    return out
