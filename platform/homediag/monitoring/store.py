"""Monitoring's SQL: settings versions, a patient's readings with their triage, reviews. Every function takes
the caller's session and decides nothing: ``homediag.access.monitoring`` decides and audits, then calls these.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, String, Text, cast, func, or_, select, true
from sqlalchemy.orm import Session

from homediag.bounded import Bounded
from homediag.clock import from_store, to_store
from homediag.store import models as m

from . import persisted
from .plan import reach as plan_reach
from .settings import DEFAULT_GROUP, MonitoringSettings, default_groups, parse_settings
from .triage import MEASURE_OF_CODE, Colour, Thresholds, Triage, Value, measures_of, triage

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WEIGHT_CODES = sorted(code for code, measure in MEASURE_OF_CODE.items() if measure == "weight")
SYSTOLIC_CODES = ["150020", "150021"]  # a cuff reading: the compound Observation (or a lone systolic one)


# Process-wide memory of what never changes: a stored Observation's measured values, by (patient key, id): a
# stored Observation is never changed and a patient key is a keyed hash, so the pair names one reading in any
# database; and a reading's triage under a given settings content (by ``SettingsVersion.settings_key``). Cleared
# when large, like the consent cache. Both are also kept in the store (``persisted``), for the next process.
_CACHE_LIMIT = 300_000
_VALUES: Bounded[tuple[str, str], tuple[Value, ...]] = Bounded(_CACHE_LIMIT)
_TRIAGED: Bounded[tuple[str, str, str], Triage] = Bounded(_CACHE_LIMIT)
# the resource as text, parsed with the standard library's C decoder: several times faster than the column's
# Decimal-exact decoder, and triage needs floats only
_RESOURCE_TEXT = cast(m.Observation.resource, Text).label("resource")


class _Row(NamedTuple):
    id: str
    patient_key: str
    code: str
    effective: datetime
    received_at: datetime | None
    gateway_received_at: datetime | None
    resource: dict[str, Any] | None


def _aware(value: datetime | None) -> datetime | None:
    return from_store(value) if value is not None else None


def _load_values(session: Session, observation_ids: Sequence[str]) -> None:
    """Read and remember the measured values of Observations not seen before."""
    for chunk in _chunks(list(observation_ids)):
        if not chunk:
            continue
        stmt = select(m.Observation.id, m.Observation.patient_key, _RESOURCE_TEXT).where(m.Observation.id.in_(chunk))
        for oid, pkey, text in session.execute(stmt):
            _VALUES.remember((pkey, oid), tuple(measures_of(json.loads(text))))


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

    @cached_property
    def fingerprint(self) -> str:
        """The settings' content as one string: equal for equal settings, whichever patient or database."""
        return json.dumps(self.settings.to_json(), sort_keys=True)

    @cached_property
    def settings_key(self) -> str:
        """The fingerprint's key (what a reading's kept triage is keyed by, ``persisted``)."""
        return persisted.settings_key(self.fingerprint)

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


@cache
def default_version() -> SettingsVersion:
    """The defaults as version 0: one object (immutable), so its fingerprint and key are computed once."""
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
    if len(history) == 1:  # the defaults only: most patients, and most calls on the worklist's path
        return history[0]
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
    resource: dict[str, Any] | None  # None only on the worklist's path (``patients_data(with_resources=False)``)
    effective: datetime
    received_at: datetime | None
    gateway_received_at: datetime | None
    result: Triage
    version: SettingsVersion
    acknowledged: bool = False
    values: tuple[Value, ...] = ()

    @property
    def colour(self) -> Colour:
        return self.result.colour


@dataclass
class Triager:
    """Triages a patient's readings, each by the settings version in force at its time; weight-change rules
    look at the patient's earlier weights (fetched once per patient)."""

    history: Sequence[SettingsVersion]
    weights: list[tuple[datetime, float]] = field(default_factory=list)

    def memo_key(
        self, reading: tuple[str, str], values: Sequence[Value], at: datetime
    ) -> tuple[persisted.TriageKey | None, SettingsVersion]:
        """(the key ``reading``'s triage is remembered and kept by, the version in force ``at``); the key is None
        when the triage depends on earlier readings (the weight-change rule), which is never remembered."""
        version = in_force(self.history, at)
        if self.looks_back(version, values):
            return None, version
        return (*reading, version.settings_key), version

    @staticmethod
    def looks_back(version: SettingsVersion, values: Sequence[Value]) -> bool:
        """Whether the triage of ``values`` under ``version`` depends on earlier readings (a weight under a
        weight-change rule): such a triage is never remembered or kept, the others depend on the values and the
        settings content alone."""
        return version.settings.thresholds.weight_change is not None and any(v.measure == "weight" for v in values)

    def cached_triage(
        self,
        reading: tuple[str, str],
        values: Sequence[Value],
        at: datetime,
        fresh: list[tuple[persisted.TriageKey, Triage]] | None = None,
    ) -> tuple[Triage, SettingsVersion]:
        """As ``triage`` of ``reading`` (patient key, Observation id), remembered per reading and settings
        content: a reading never changes, and its triage depends on nothing else but for the weight rule (earlier
        weights), which is never remembered. A triage computed here is added to ``fresh`` (to be kept)."""
        key, version = self.memo_key(reading, values, at)
        return self.keyed_triage(key, version, values, at, fresh)

    def keyed_triage(
        self,
        key: persisted.TriageKey | None,
        version: SettingsVersion,
        values: Sequence[Value],
        at: datetime,
        fresh: list[tuple[persisted.TriageKey, Triage]] | None = None,
    ) -> tuple[Triage, SettingsVersion]:
        """``cached_triage`` with its ``memo_key`` already found."""
        if key is None:
            return self.triage(values, at)
        found = _TRIAGED.get(key)
        if found is None:
            found = triage(values, version.settings.thresholds, at=at)
            _TRIAGED.remember(key, found)
            if fresh is not None:
                fresh.append((key, found))
        return found, version

    def triage(self, reading: dict[str, Any] | Sequence[Value], at: datetime) -> tuple[Triage, SettingsVersion]:
        """A stored Observation (or its measured values) taken ``at``, by the version in force then."""
        version = in_force(self.history, at)
        return triage(reading, version.settings.thresholds, earlier_weights=self.weights, at=at), version


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
    session: Session,
    patient_key: str,
    start: datetime,
    end: datetime,
    scope: ColumnElement[bool] | None = None,
    history: Sequence[SettingsVersion] | None = None,
) -> Triager:
    """What triaging the patient's readings of [start, end) needs: its settings history (or the one given, e.g.
    proposed settings) and earlier weights."""
    history = list(history) if history is not None else versions(session, patient_key)
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
    *,
    with_resources: bool = True,
) -> list[TriagedReading]:
    """The patient's readings of [start, end) (``scope``: what the reader may see), oldest first, triaged (without
    ``with_resources``: ``resource`` None, for a caller that has the resources already)."""
    if ids is not None:
        wanted = set(ids)
        data = patients_data(session, [patient_key], start, end, scope, only=wanted, with_resources=with_resources)
    else:
        data = patients_data(session, [patient_key], start, end, scope, with_resources=with_resources)
    return [r for r in data[patient_key].readings if r.effective >= start]


@dataclass
class PatientData:
    """What a patient's monitoring status needs, loaded for many patients at once: the settings history, the
    readings from ``since`` (before the period when the plan or the weight rule looks back) to the period's end,
    triaged, and the last review."""

    history: list[SettingsVersion]
    readings: list[TriagedReading]
    last_review: m.Review | None = None


_CHUNK = 500


def _chunks(keys: Sequence[str]) -> list[list[str]]:
    return [list(keys[i : i + _CHUNK]) for i in range(0, len(keys), _CHUNK)] or [[]]


def settings_histories(session: Session, patient_keys: Sequence[str]) -> dict[str, list[SettingsVersion]]:
    """``versions`` of many patients, in a statement per 500."""
    keys = list(dict.fromkeys(patient_keys))
    histories: dict[str, list[SettingsVersion]] = {k: [default_version()] for k in keys}
    for chunk in _chunks(keys):
        rows = session.execute(
            select(m.MonitoringSettings)
            .where(m.MonitoringSettings.patient_key.in_(chunk))
            .order_by(m.MonitoringSettings.patient_key, m.MonitoringSettings.version)
        ).scalars()
        for row in rows:
            histories[row.patient_key].append(
                SettingsVersion(
                    row.version,
                    parse_settings(row.content),
                    from_store(row.valid_from),
                    from_store(row.recorded_at),
                    row.recorded_by,
                    row.note,
                )
            )
    return histories


def patients_data(
    session: Session,
    patient_keys: Sequence[str],
    start: datetime,
    end: datetime,
    scope: ColumnElement[bool] | None = None,
    *,
    lookback: bool = False,
    only: set[str] | None = None,
    with_resources: bool = True,
    after: datetime | None = None,
) -> dict[str, PatientData]:
    """Every patient's settings history and triaged readings of [start, end) in a few statements (not a few per
    patient): the worklist's path. With ``lookback`` the readings start early enough for each plan's earliest
    window (``plan.reach``); the weight rule's earlier weights are always read. Without ``with_resources`` the
    readings carry their measured values but not their resources (``resource`` None), which are then read only for
    readings this process has not seen before. With ``after``, only the readings dated from then on (the weight
    rule's earlier weights too: a caller that passes it has no weight rule to apply)."""
    keys = list(dict.fromkeys(patient_keys))
    histories = settings_histories(session, keys)
    weight_days = max(
        (
            v.settings.thresholds.weight_change.days
            for h in histories.values()
            for v in h
            if v.settings.thresholds.weight_change is not None
        ),
        default=0,
    )
    reached = end
    if lookback:  # every patient's plan windows (each starts its own; a reading before them counts for none)
        reached = min((plan_reach(in_force(h, end).settings.plan, start, end) for h in histories.values()), default=end)
    since = min(start - timedelta(days=weight_days), reached)
    if after is not None:
        since = max(since, after)
    # The worklist's path reads four plain columns, the time as text parsed by datetime.fromisoformat (the DateTime
    # type's per-row processing on SQLite cost more than the rest of a reading's work); the resources are read only
    # for readings this process has not seen (``_load_values``).
    columns: list[Any] = [
        m.Observation.id,
        m.Observation.patient_key,
        m.Observation.code,
        cast(m.Observation.effective_start, String).label("effective"),
    ]
    if with_resources:
        columns += [m.Observation.received_at, m.Observation.gateway_received_at, _RESOURCE_TEXT]
    fetched: list[_Row] = []
    for chunk in _chunks(keys):
        stmt = select(*columns).where(
            m.Observation.patient_key.in_(chunk),
            m.Observation.effective_start >= to_store(since),
            m.Observation.effective_start < to_store(end),
            scope if scope is not None else true(),
        )
        if only is not None:  # the readings asked for, and the weights their triage may need
            stmt = stmt.where(or_(m.Observation.id.in_(sorted(only)), m.Observation.code.in_(WEIGHT_CODES)))
        for row in session.execute(stmt.order_by(m.Observation.effective_start, m.Observation.id)):
            effective = datetime.fromisoformat(row[3]).replace(tzinfo=UTC)
            if with_resources:
                fetched.append(
                    _Row(row[0], row[1], row[2], effective, _aware(row[4]), _aware(row[5]), json.loads(row[6]))
                )
            else:
                fetched.append(_Row(row[0], row[1], row[2], effective, None, None, None))
    acked: set[str] = set()
    for chunk in _chunks(keys):
        acked |= set(
            session.execute(
                select(m.ReviewItem.observation_id).where(
                    m.ReviewItem.patient_key.in_(chunk), m.ReviewItem.effective_at >= to_store(since)
                )
            ).scalars()
        )
    if with_resources:
        for r in fetched:
            if (r.patient_key, r.id) not in _VALUES and r.resource is not None:
                _VALUES.remember((r.patient_key, r.id), tuple(measures_of(r.resource)))
    else:
        _recall_values(session, [(r.patient_key, r.id) for r in fetched if (r.patient_key, r.id) not in _VALUES])
    weights: dict[str, list[tuple[datetime, float]]] = {}
    for r in fetched:
        if r.code in WEIGHT_CODES:
            for value in _VALUES[(r.patient_key, r.id)]:
                if value.measure == "weight" and value.unit in (None, "kg"):
                    weights.setdefault(r.patient_key, []).append((r.effective, value.value))
    out = {k: PatientData(histories[k], []) for k in keys}
    triagers = {k: Triager(histories[k], weights.get(k, [])) for k in keys}
    wanted = [
        r
        for r in fetched
        if (only is None or r.id in only) and (lookback or r.effective >= start)  # the readings returned
    ]
    keyed = [
        (r, *triagers[r.patient_key].memo_key((r.patient_key, r.id), _VALUES[(r.patient_key, r.id)], r.effective))
        for r in wanted
    ]
    missing = [key for _, key, _ in keyed if key is not None and key not in _TRIAGED]
    for key, found in persisted.recall_triages(session, missing).items():
        _TRIAGED.remember(key, found)
    fresh: list[tuple[persisted.TriageKey, Triage]] = []
    for r, key, version in keyed:
        values = _VALUES[(r.patient_key, r.id)]
        result, version = triagers[r.patient_key].keyed_triage(key, version, values, r.effective, fresh)
        out[r.patient_key].readings.append(
            TriagedReading(
                r.id,
                r.resource,
                r.effective,
                r.received_at,
                r.gateway_received_at,
                result,
                version,
                r.id in acked,
                values,
            )
        )
    persisted.keep_triages(session, fresh)
    for review in last_reviews(session, keys):
        out[review.patient_key].last_review = review
    return out


def _recall_values(session: Session, missing: list[tuple[str, str]]) -> None:
    """Remember the values of readings not seen before in this process: kept in the store (``persisted``), else
    read from their resources, and then kept."""
    if not missing:
        return
    for key, values in persisted.recall_values(session, missing).items():
        _VALUES.remember(key, values)
    unknown = [key for key in missing if key not in _VALUES]
    _load_values(session, [oid for _, oid in unknown])
    persisted.keep_values(session, [(key, _VALUES[key]) for key in unknown if key in _VALUES])


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


def last_reviews(session: Session, patient_keys: Sequence[str]) -> list[m.Review]:
    """The last review of each of the patients (that has one)."""
    out: list[m.Review] = []
    for chunk in _chunks(list(patient_keys)):
        latest = (
            select(m.Review.patient_key, func.max(m.Review.reviewed_at).label("at"))
            .where(m.Review.patient_key.in_(chunk))
            .group_by(m.Review.patient_key)
            .subquery()
        )
        rows = session.execute(
            select(m.Review)
            .join(latest, (latest.c.patient_key == m.Review.patient_key) & (latest.c.at == m.Review.reviewed_at))
            .order_by(m.Review.patient_key, m.Review.id)
        ).scalars()
        seen: set[str] = set()
        for review in rows:
            if review.patient_key not in seen:
                seen.add(review.patient_key)
                out.append(review)
    return out


def last_review(session: Session, patient_key: str) -> m.Review | None:
    return session.execute(
        select(m.Review).where(m.Review.patient_key == patient_key).order_by(m.Review.reviewed_at.desc()).limit(1)
    ).scalar_one_or_none()


def review_times(session: Session) -> dict[str, Any]:
    """Aggregates for the evaluation: per colour, how many readings were acknowledged and the median and 90th
    percentile of hours from reading (device time) and from arrival (platform) to their first acknowledgement."""
    first = (
        select(
            m.ReviewItem.observation_id,
            func.min(m.ReviewItem.reviewed_at).label("reviewed_at"),
        )
        .group_by(m.ReviewItem.observation_id)
        .subquery()
    )
    rows = session.execute(
        select(m.ReviewItem.colour, m.ReviewItem.effective_at, m.ReviewItem.received_at, first.c.reviewed_at)
        .join(first, first.c.observation_id == m.ReviewItem.observation_id)
        .where(m.ReviewItem.reviewed_at == first.c.reviewed_at)
    ).all()

    def summary(hours: list[float]) -> dict[str, Any]:
        hours = sorted(hours)
        if not hours:
            return {"count": 0, "median_hours": None, "p90_hours": None}
        return {
            "count": len(hours),
            "median_hours": round(hours[(len(hours) - 1) // 2], 2),
            "p90_hours": round(hours[min(len(hours) - 1, int(0.9 * len(hours)))], 2),
        }

    out: dict[str, Any] = {}
    for colour in sorted({r.colour for r in rows}):
        mine = [r for r in rows if r.colour == colour]
        out[colour] = {
            "from_reading": summary([(r.reviewed_at - r.effective_at).total_seconds() / 3600 for r in mine]),
            "from_arrival": summary(
                [(r.reviewed_at - r.received_at).total_seconds() / 3600 for r in mine if r.received_at is not None]
            ),
        }
    return out


def forget() -> None:
    """Empty this process's memories of readings' values and triages (what a freshly started process has); what
    is kept in the store (``persisted``) stays."""
    _VALUES.clear()
    _TRIAGED.clear()
    persisted.forget()
