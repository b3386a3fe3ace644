"""Monitoring's SQL: settings versions, a patient's readings with their triage, reviews. Every function takes
the caller's session and decides nothing: ``homediag.access.monitoring`` decides and audits, then calls these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from homediag.clock import from_store, to_store
from homediag.store import models as m

from .settings import DEFAULT_GROUP, MonitoringSettings, default_groups, parse_settings
from .triage import MEASURE_OF_CODE, Colour, Thresholds, Triage, measures_of, triage

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WEIGHT_CODES = sorted(code for code, measure in MEASURE_OF_CODE.items() if measure == "weight")
SYSTOLIC_CODES = ["150020", "150021"]  # a cuff reading: the compound Observation (or a lone systolic one)


@dataclass(frozen=True)
class SettingsVersion:
    """One version of a patient's settings. Version 0 is the default group's set, in force until a first
    version is recorded (it is not stored)."""

    version: int
    settings: MonitoringSettings
    valid_from: datetime
    recorded_at: datetime | None
    recorded_by: str | None
    note: str | None

    @property
    def label(self) -> str:
        return f"thresholds version {self.version} ({self.settings.group})"

    def to_json(self, patient_id: str) -> dict[str, Any]:
        def instant(t: datetime | None) -> str | None:
            return t.isoformat().replace("+00:00", "Z") if t is not None else None

        return {
            "patient": f"Patient/{patient_id}",
            "version": self.version,
            "valid_from": instant(self.valid_from if self.version else None),
            "recorded_at": instant(self.recorded_at),
            "recorded_by": self.recorded_by,
            "note": self.note,
            **self.settings.to_json(),
        }


def default_version() -> SettingsVersion:
    return SettingsVersion(0, default_groups()[DEFAULT_GROUP].settings, EPOCH, None, None, None)


def versions(session: Session, patient_key: str) -> list[SettingsVersion]:
    """Every version of a patient's settings, oldest first, the defaults (version 0) first."""
    rows = session.execute(
        select(m.MonitoringSettings)
        .where(m.MonitoringSettings.patient_key == patient_key)
        .order_by(m.MonitoringSettings.version)
    ).scalars()
    out = [default_version()]
    for row in rows:
        out.append(
            SettingsVersion(
                row.version,
                parse_settings(row.content),
                from_store(row.valid_from),
                from_store(row.recorded_at),
                row.recorded_by,
                row.note,
            )
        )
    return out


def in_force(history: Sequence[SettingsVersion], at: datetime) -> SettingsVersion:
    """The version in force at ``at``: the highest whose ``valid_from`` is not after it (a later decision
    overrides an earlier one from its own ``valid_from`` on, even when back-dated)."""
    best = history[0]
    for v in history:
        if v.valid_from <= at and v.version >= best.version:
            best = v
    return best


def thresholds_in_force(session: Session, patient_key: str, at: datetime) -> Thresholds:
    return in_force(versions(session, patient_key), at).settings.thresholds


def plan_for(session: Session, patient_key: str, at: datetime) -> Any:
    return in_force(versions(session, patient_key), at).settings.plan


def record_version(
    session: Session,
    patient_key: str,
    new: MonitoringSettings,
    *,
    valid_from: datetime,
    recorded_at: datetime,
    recorded_by: str,
    note: str | None,
) -> int:
    """Store ``new`` as the next version; returns its number."""
    current = session.execute(
        select(func.max(m.MonitoringSettings.version)).where(m.MonitoringSettings.patient_key == patient_key)
    ).scalar()
    version = (current or 0) + 1
    session.add(
        m.MonitoringSettings(
            patient_key=patient_key,
            version=version,
            group=new.group,
            content=new.to_json(),
            valid_from=to_store(valid_from),
            recorded_at=to_store(recorded_at),
            recorded_by=recorded_by,
            note=note,
        )
    )
    session.flush()
    return version


# -- readings and their triage -------------------------------------------------------------------------
@dataclass(frozen=True)
class TriagedReading:
    id: str
    resource: dict[str, Any]
    effective: datetime
    received_at: datetime | None
    gateway_received_at: datetime | None
    result: Triage
    version: SettingsVersion
    acknowledged: bool = False

    @property
    def colour(self) -> Colour:
        return self.result.colour


@dataclass
class Triager:
    """Triages a patient's readings, each by the settings version in force at its time; weight-change rules
    look at the patient's earlier weights (fetched once per patient)."""

    history: Sequence[SettingsVersion]
    weights: list[tuple[datetime, float]] = field(default_factory=list)

    def triage(self, resource: dict[str, Any], at: datetime) -> tuple[Triage, SettingsVersion]:
        version = in_force(self.history, at)
        return triage(resource, version.settings.thresholds, earlier_weights=self.weights), version


def weights_between(
    session: Session, patient_key: str, start: datetime, end: datetime, scope: ColumnElement[bool] | None = None
) -> list[tuple[datetime, float]]:
    rows = session.execute(
        select(m.Observation.effective_start, m.Observation.resource).where(
            m.Observation.patient_key == patient_key,
            m.Observation.code.in_(WEIGHT_CODES),
            m.Observation.effective_start >= to_store(start),
            m.Observation.effective_start < to_store(end),
            scope if scope is not None else true(),
        )
    ).all()
    out = []
    for at, resource in rows:
        for value in measures_of(resource):
            if value.measure == "weight" and value.unit in (None, "kg"):
                out.append((from_store(at), value.value))
    return out


def triager(
    session: Session, patient_key: str, start: datetime, end: datetime, scope: ColumnElement[bool] | None = None
) -> Triager:
    """What triaging the patient's readings of [start, end) needs: its settings history and earlier weights."""
    history = versions(session, patient_key)
    days = max(
        (v.settings.thresholds.weight_change.days for v in history if v.settings.thresholds.weight_change), default=0
    )
    weights = weights_between(session, patient_key, start - timedelta(days=days), end, scope) if days else []
    return Triager(history, weights)


def triaged_readings(
    session: Session,
    patient_key: str,
    start: datetime,
    end: datetime,
    scope: ColumnElement[bool] | None = None,
    ids: Sequence[str] | None = None,
) -> list[TriagedReading]:
    """The patient's readings of [start, end) (``scope``: what the reader may see), oldest first, triaged."""
    stmt = select(
        m.Observation.id,
        m.Observation.resource,
        m.Observation.effective_start,
        m.Observation.received_at,
        m.Observation.gateway_received_at,
    ).where(
        m.Observation.patient_key == patient_key,
        m.Observation.effective_start >= to_store(start),
        m.Observation.effective_start < to_store(end),
        scope if scope is not None else true(),
    )
    if ids is not None:
        stmt = stmt.where(m.Observation.id.in_(list(ids)))
    rows = session.execute(stmt.order_by(m.Observation.effective_start, m.Observation.id)).all()
    t = triager(session, patient_key, start, end, scope)
    acked = acknowledged_ids(session, patient_key, [r.id for r in rows])
    out = []
    for r in rows:
        effective = from_store(r.effective_start)
        result, version = t.triage(r.resource, effective)
        out.append(
            TriagedReading(
                r.id,
                r.resource,
                effective,
                from_store(r.received_at) if r.received_at else None,
                from_store(r.gateway_received_at) if r.gateway_received_at else None,
                result,
                version,
                r.id in acked,
            )
        )
    return out


# -- reviews -------------------------------------------------------------------------------------------
def acknowledged_ids(session: Session, patient_key: str, observation_ids: Sequence[str]) -> set[str]:
    if not observation_ids:
        return set()
    found: set[str] = set()
    ids = list(observation_ids)
    for i in range(0, len(ids), 500):
        found |= set(
            session.execute(
                select(m.ReviewItem.observation_id).where(
                    m.ReviewItem.patient_key == patient_key, m.ReviewItem.observation_id.in_(ids[i : i + 500])
                )
            ).scalars()
        )
    return found


def last_review(session: Session, patient_key: str) -> m.Review | None:
    return session.execute(
        select(m.Review).where(m.Review.patient_key == patient_key).order_by(m.Review.reviewed_at.desc()).limit(1)
    ).scalar_one_or_none()
