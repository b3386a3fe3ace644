"""Where the web app's reads take triage from: ``homediag.monitoring`` (thresholds and plans per patient,
versioned; reviews). This module only asks it, for patients the calling read has already decided on;
it never triages by itself, so that there is one triage engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from homediag.clock import from_store
from homediag.fhir_profiles import terminology
from homediag.monitoring import store as monitoring_store
from homediag.monitoring.instants import instant, micros, span
from homediag.monitoring.plan import Plan
from homediag.monitoring.triage import MEASURE_OF_CODE, UNITS, Limits, Value, triage_value
from homediag.store import models as m

from .readings import Reading

_NEVER = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Assessment:
    colour: str  # red | yellow | blue | green
    open_colour: str  # the same over the readings not yet acknowledged
    unacknowledged: int
    reasons: list[str]
    plan_ratio: float | None  # received / expected against the monitoring plan
    last_reviewed: tuple[str, datetime] | None  # (by whom, when)


@dataclass(frozen=True)
class Band:
    """A threshold band of one value (a terminology key: systolic, pulse-rate, ...) to draw behind its chart."""

    component: str
    low: float | None
    high: float | None
    colour: str  # green | yellow | red


def available() -> bool:
    return True


def measure_of(key: str) -> str | None:
    """The monitoring measure (systolic, pulse, weight, ...) of a terminology key, by its MDC code."""
    found = terminology.MEASUREMENTS.get(key)
    return MEASURE_OF_CODE.get(found.primary_code) if found is not None else None


def _reviewer(session: Session, who: str) -> str:
    if who.startswith("oidc:"):
        named = session.execute(
            select(m.WebSession.name).where(m.WebSession.user_id == who).order_by(m.WebSession.created_at.desc())
        ).scalar()
        return str(named or who[5:])
    return str(session.execute(select(m.User.name).where(m.User.id == who)).scalar() or who)


def assess_patients(
    access: Any,
    session: Session,
    patients: list[tuple[str, str]],
    scope: ColumnElement[bool],
    start: datetime,
    end: datetime,
) -> dict[str, Assessment]:
    """Patient id -> its monitoring status for [start, end), for (patient id, patient key) pairs whose readable
    Observations ``scope`` selects; monitoring loads them all in a few statements."""
    data = load(session, [k for _, k in patients], scope, start, end)
    return {patient_id: assess(access, session, patient_id, data[pkey], start, end) for patient_id, pkey in patients}


def load(
    session: Session, patient_keys: list[str], scope: ColumnElement[bool], start: datetime, end: datetime
) -> dict[str, monitoring_store.PatientData]:
    """What ``assess`` needs of each patient (settings history, readings triaged from as early as the plan looks
    back, last review), in a few statements for all of them."""
    return monitoring_store.patients_data(session, patient_keys, start, end, scope, lookback=True, with_resources=False)


def assess(
    access: Any,
    session: Session,
    patient_id: str,
    data: monitoring_store.PatientData,
    start: datetime,
    end: datetime,
    parts: Any = None,
) -> Assessment:
    """Monitoring's status of a patient for [start, end) (``access._status_of``: monitoring decides, not this), from
    the running parts of its readings (``status_parts.StatusParts``) when the caller has them."""
    status = access._status_of(patient_id, data, start, end, start, parts)
    review = data.last_review
    return Assessment(
        colour=status.colour.value,
        open_colour=status.open_colour.value,
        unacknowledged=status.unacknowledged,
        reasons=list(status.reasons),
        plan_ratio=status.adherence.ratio,
        last_reviewed=(_reviewer(session, review.reviewed_by), from_store(review.reviewed_at))
        if review is not None
        else None,
    )


def stable_until(
    data: monitoring_store.PatientData,
    period_days: int,
    now: datetime,
    zone: ZoneInfo,
    times: Iterable[int] | None = None,
) -> datetime:
    """The first instant after ``now`` at which the passing of time alone (no new reading, review or settings)
    could change ``assess`` of a period of ``period_days`` ending at the moment asked, or the days measured in it:
    when a reading leaves the period, or crosses an edge of a plan item's windows (which end at the moment asked
    and step back by the item's ``every_days``), at local midnight (days are counted in local dates), or when a
    settings version dated ahead comes into force. Conservative: any of these instants, whether or not it changes
    the outcome. With ``times`` (microseconds since the epoch), the readings' instants are those too (a status's
    running parts hold the ones that matter: ``StatusParts.instants``)."""
    spans = {timedelta(days=period_days)}
    for version in data.history:
        spans |= {timedelta(days=item.every_days) for item in version.settings.plan.items}
    until = min(
        settled_until(data.history, now), _edges(spans, now, zone, [micros(r.effective) for r in data.readings])
    )
    return until if times is None else min(until, _edges(spans, now, zone, times))


def settled_until(history: Sequence[monitoring_store.SettingsVersion], now: datetime) -> datetime:
    """The first instant after ``now`` at which a settings version dated ahead comes into force (the plan and the
    thresholds in force may change then); far in the future when none is dated ahead."""
    return min((v.valid_from for v in history if v.valid_from > now), default=_NEVER)


def parts_stable_until(plan: Plan, period_days: int, now: datetime, zone: ZoneInfo, times: Iterable[int]) -> datetime:
    """``stable_until`` of a status's running parts whose settings do not change before the instant asked
    (``settled_until``): their plan's windows, the period and local midnight, over the parts' instants
    (microseconds since the epoch)."""
    spans = {timedelta(days=period_days)} | {timedelta(days=item.every_days) for item in plan.items}
    return _edges(spans, now, zone, times)


def _edges(spans: set[timedelta], now: datetime, zone: ZoneInfo, times: Iterable[int]) -> datetime:
    """The next local midnight after ``now``, or the first instant after ``now`` that is one of ``times``
    (microseconds since the epoch) plus a whole number of one of ``spans``, if earlier. An instant ``at``'s next
    crossing of a span ``s`` after ``now`` is ``now + s - (now - at) mod s``: the earliest is the one whose
    remainder is the largest."""
    until = _next_midnight(now, zone)
    instants = set(times)
    if not instants:
        return until
    at_now = micros(now)
    soonest = min(step - max((at_now - at) % step for at in instants) for step in map(span, spans))
    return min(until, instant(at_now + soonest))


@lru_cache(maxsize=16)
def _next_midnight(now: datetime, zone: ZoneInfo) -> datetime:
    """The local midnight after ``now`` (the same for every patient a view finishes at one instant)."""
    return datetime.combine(now.astimezone(zone).date() + timedelta(days=1), time.min, zone)


def assess_readings(
    session: Session,
    patient_key: str,
    scope: ColumnElement[bool],
    start: datetime,
    end: datetime,
    readings: list[Reading],
    data: monitoring_store.PatientData | None = None,
) -> list[Band]:
    """Colours the readings (``Reading.triage``, ``Reading.acknowledged``) against the thresholds in force at
    each one's time; the bands of the thresholds in force at the end of the period. ``data``: the patient's
    monitoring data of the same period and scope when the caller has loaded it already (``load``), whose
    readings from ``start`` are the ones ``triaged_readings`` would read."""
    found = (
        [r for r in data.readings if r.effective >= start]
        if data is not None
        else monitoring_store.triaged_readings(session, patient_key, start, end, scope, with_resources=False)
    )
    triaged = {r.id: r for r in found}
    for reading in readings:
        found = triaged.get(reading.id)
        if found is not None:
            reading.triage = found.colour.value if found.result.triaged else None
            reading.acknowledged = found.acknowledged
            reading.reasons = list(found.result.reasons)
    thresholds = (
        monitoring_store.in_force(data.history, end).settings.thresholds
        if data is not None
        else monitoring_store.thresholds_in_force(session, patient_key, end)
    )
    keys = {k for r in readings for k in r.values}
    bands: list[Band] = []
    for key in sorted(keys):
        measure = measure_of(key)
        limits: Limits | None = thresholds.limits.get(measure) if measure else None
        if limits is None:
            continue
        edges = sorted(
            {e for e in (limits.red_low, limits.yellow_low, limits.yellow_high, limits.red_high) if e is not None}
        )
        if not edges:
            continue
        spans: list[tuple[float | None, float | None]] = [(None, edges[0])]
        spans += [(a, b) for a, b in zip(edges, edges[1:], strict=False)] + [(edges[-1], None)]
        for low, high in spans:
            if low is not None and high is not None:
                probe = (low + high) / 2
            else:
                probe = high - 1 if high is not None else (low or 0) + 1
            colour = triage_value(Value(measure, probe, UNITS.get(measure)), limits).colour.value  # monitoring decides
            bands.append(Band(key, low, high, colour))
    return bands
