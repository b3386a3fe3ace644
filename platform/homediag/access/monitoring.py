"""Monitoring reads (``homediag.monitoring``): a clinician's patients' triage, status and worklist, settings
(thresholds and plan) and their versions, each decided (care team, consent for treatment, the consent's data
window) and audited here, like every other read of patient data. What may not be seen answers as unknown (404).
Reviews (acknowledgements) build on these in ``reviews``.

Also the Observation serving path's hook (``interpret``): for a clinician, each Observation carries its triage
against the thresholds in force at its time (``interpretation``, ``referenceRange``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from homediag import audit
from homediag.clock import from_store
from homediag.errors import BadRequest, Forbidden, NotFound, PreconditionFailed, Unprocessable
from homediag.monitoring import persisted, store
from homediag.monitoring.plan import Adherence, Plan, adherence_of_micros
from homediag.monitoring.settings import MonitoringSettings, SettingsError, parse_settings
from homediag.monitoring.triage import Colour, worst
from homediag.store import models as m
from homediag.users import Principal

from .decisions import Decisions
from .interpretation import interpret
from .patients import _said
from .status_parts import Period, StatusParts
from .view import View

PREVIEW_DAYS = 30


@dataclass(frozen=True)
class PatientStatus:
    """A patient's monitoring status for a period: ``colour`` the worst of its readings (red, yellow) or blue
    when measurements are missing against the plan, else green; ``open_colour`` the same over the readings not
    yet acknowledged. ``latest``: per measure, the latest reading of the period."""

    patient_id: str
    colour: Colour
    open_colour: Colour
    reasons: list[str]
    counts: dict[str, int]
    unacknowledged: int
    latest: dict[str, dict[str, Any]]
    adherence: Adherence
    last_review: dict[str, Any] | None
    settings_version: int
    group: str
    care_teams: list[dict[str, str]] = field(default_factory=list)  # the clinician's teams the patient is on

    def to_json(self) -> dict[str, Any]:
        return {
            "patient": f"Patient/{self.patient_id}",
            "colour": self.colour.value,
            "open_colour": self.open_colour.value,
            "reasons": self.reasons,
            "counts": self.counts,
            "unacknowledged": self.unacknowledged,
            "latest": self.latest,
            "adherence": {
                "ratio": self.adherence.ratio,
                "missing": self.adherence.missing,
                "items": [
                    {
                        "measurement": i.measurement,
                        "expected": i.expected,
                        "received": i.received,
                        "days_with_reading": i.days_with_reading,
                        "days": i.days,
                    }
                    for i in self.adherence.items
                ],
            },
            "last_review": self.last_review,
            "settings_version": self.settings_version,
            "group": self.group,
            "care_teams": self.care_teams,
        }


def _instant(t: datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t is not None else None


def review_summary(review: m.Review | None) -> dict[str, Any] | None:
    if review is None:
        return None
    return {
        "task": f"Task/{review.id}",
        "by": review.reviewed_by,
        "at": _instant(from_store(review.reviewed_at)),
        "scope": review.scope,
        "note": review.note,
    }


def status_of(
    patient_id: str,
    data: store.PatientData,
    start: datetime,
    end: datetime,
    adherence_from: datetime,
    zone: ZoneInfo,
    parts: StatusParts | None = None,
) -> PatientStatus:
    """The status of ``data``'s readings for [start, end) (local dates in ``zone``), from ``parts`` gathered of them
    already if given: ``MonitoringReads._status_of``, and the worklist's part grown at ingest (no reader there)."""
    current = store.in_force(data.history, end)
    if parts is None:
        parts = parts_of(data, start, end)
    finished = finish(parts, current.settings.plan, start, end, adherence_from, zone)
    period, adh = finished.period, finished.adherence
    counts, unacknowledged, latest = period.counts, period.unacknowledged, period.latest
    colour, open_colour, reasons = finished.colour, finished.open_colour, finished.reasons
    latest_json: dict[str, dict[str, Any]] = {}
    for measure, r in latest.items():
        value = next(v for v in r.values if v.measure == measure)
        verdict = next((x for x in r.result.verdicts if x.measure == measure), None)
        latest_json[measure] = {
            "observation": f"Observation/{r.id}",
            "value": value.value,
            "unit": value.unit,
            "at": _instant(r.effective),
            "colour": verdict.colour.value if verdict else None,
        }
    return PatientStatus(
        patient_id=patient_id,
        colour=colour,
        open_colour=open_colour,
        reasons=reasons,
        counts=counts,
        unacknowledged=unacknowledged,
        latest=latest_json,
        adherence=adh,
        last_review=review_summary(data.last_review),
        settings_version=current.version,
        group=current.settings.group,
    )


@dataclass(frozen=True)
class Finished:
    """A status's colours, reasons and adherence, finished from its running parts."""

    period: Period
    colour: Colour
    open_colour: Colour
    reasons: list[str]
    adherence: Adherence


def finish(
    parts: StatusParts,
    plan: Plan,
    start: datetime,
    end: datetime,
    adherence_from: datetime,
    zone: ZoneInfo,
    with_latest: bool = True,
) -> Finished:
    """``status_of``'s colours, reasons and adherence for [start, end) from ``parts`` (gathered of readings dated
    before ``end``, folded with a start not after ``start``) and the plan in force at ``end``: what the worklist
    finishes its kept parts with at a later instant, without reading the patient's history (and without the period's
    latest readings unless ``with_latest``: the worklist shows its own)."""
    period = parts.at(start, with_latest)
    colour, open_colour, reasons = period.colour, period.open_colour, list(period.reasons)
    adh = adherence_of_micros(plan, parts.times, adherence_from, end, zone)
    if adh.missing:
        reasons += adh.reasons
        colour = worst((colour, Colour.BLUE))
        open_colour = worst((open_colour, Colour.BLUE))
    return Finished(period, colour, open_colour, reasons, adh)


def parts_of(data: store.PatientData, start: datetime, end: datetime) -> StatusParts:
    """The running parts of ``status_of`` of all of ``data``'s readings."""
    return StatusParts(store.in_force(data.history, end).settings.plan).fold(data.readings, start)


class MonitoringReads(Decisions):
    # -- the decision for one patient ---------------------------------------------------------------------
    def _clinician_view(self, principal: Principal, purpose: str | None) -> View:
        if principal.role != "clinician":
            raise Forbidden(f"the role '{principal.role}' may not use monitoring (clinicians only)")
        return self.view(principal, purpose)

    def _patient_scope(
        self, session: Session, view: View, patient_id: str, action: str
    ) -> tuple[str, ColumnElement[bool]] | None:
        """(patient key, the SQL scope of its readable Observations), or None (audited deny) when the clinician
        may not see the patient now."""
        pkey = session.execute(select(m.Patient.patient_key).where(m.Patient.id == patient_id)).scalar_one_or_none()
        if pkey is None:
            self._audit(
                session,
                view.principal,
                action,
                "deny",
                purpose=view.purpose,
                entity=f"Patient/{_said(patient_id)}",
                detail="no such resource",
            )
            return None
        windows = self.readable_windows(session, view, [pkey])
        if pkey not in windows:
            reason = self._relation_reason(session, view, pkey) or self.decide(session, view.purpose, pkey, None).reason
            self._audit(
                session,
                view.principal,
                action,
                "deny",
                purpose=view.purpose,
                patient_key=pkey,
                entity=f"Patient/{_said(patient_id)}",
                detail=reason,
            )
            return None
        return pkey, self.scope(windows)

    # -- settings (thresholds and plan) ---------------------------------------------------------------------
    def monitoring_settings(self, principal: Principal, patient_id: str, purpose: str | None = None) -> dict[str, Any]:
        """``{"current": version, "history": [versions, newest first]}``; version 0 is the default set."""
        view = self._clinician_view(principal, purpose)
        out: dict[str, Any] | None = None
        with self.rt.sessions.begin() as session:
            found = self._patient_scope(session, view, patient_id, "monitoring-settings")
            if found is not None:
                pkey, _scope = found
                history = store.versions(session, pkey)
                current = store.in_force(history, self.rt.clock())
                self._audit(
                    session,
                    principal,
                    "monitoring-settings",
                    "permit",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity=f"Patient/{_said(patient_id)}",
                    detail=f"{len(history)} version(s)",
                )
                out = {
                    "current": current.to_json(patient_id),
                    "latest_version": history[-1].version,
                    "history": [v.to_json(patient_id) for v in reversed(history)],
                }
        if out is None:
            raise NotFound.resource("Patient", _said(patient_id))
        return out

    def record_monitoring_settings(
        self,
        principal: Principal,
        patient_id: str,
        body: Any,
        expected_version: int | None,
        purpose: str | None = None,
    ) -> dict[str, Any]:
        """A new version of the patient's settings; ``expected_version`` (If-Match, or ``version`` in the body)
        must be the latest version (0 when there is none yet), else 412 and nothing is stored."""
        view = self._clinician_view(principal, purpose)
        if isinstance(body, dict) and "version" in body:
            given = body["version"]
            if isinstance(given, bool) or not isinstance(given, int):
                raise BadRequest(f"version must be a whole number, got {given!r}", "version")
            if expected_version is not None and expected_version != given:
                raise BadRequest(f"If-Match names version {expected_version} but the body version {given}", "version")
            expected_version = given
        if expected_version is None:
            raise BadRequest(
                "say which version this change is based on: an If-Match: W/\"<version>\" header or 'version' in the "
                "body (0 when the patient has no settings yet)",
                "version",
                code="required",
            )
        valid_from = _valid_from(body, self.rt.clock())
        note = _note(body)
        out: dict[str, Any] | None = None
        with self.rt.sessions.begin() as session:
            found = self._patient_scope(session, view, patient_id, "monitoring-settings-change")
            if found is not None:
                pkey, _scope = found
                history = store.versions(session, pkey)
                latest = history[-1]
                if latest.version != expected_version:
                    raise PreconditionFailed(
                        f"the settings are at version {latest.version}, not {expected_version}: reload, then change",
                        "version",
                    )
                new = _parse(body, latest.settings)
                version = store.record_version(
                    session,
                    pkey,
                    new,
                    valid_from=valid_from,
                    recorded_at=self.rt.clock(),
                    recorded_by=principal.id,
                    note=note,
                )
                changed = store.versions(session, pkey)  # kept triages no read asks for any more: gone
                persisted.prune_triages(session, pkey, lambda at: store.in_force(changed, at).settings_key)
                self._audit(
                    session,
                    principal,
                    "monitoring-settings-change",
                    "done",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity=f"Patient/{_said(patient_id)}",
                    detail=f"version {version} ({new.group}) valid from {_instant(valid_from)}",
                )
                out = changed[-1].to_json(patient_id)
        if out is None:
            raise NotFound.resource("Patient", _said(patient_id))
        return out

    def preview_alerts(
        self, principal: Principal, patient_id: str, body: Any, days: int = PREVIEW_DAYS, purpose: str | None = None
    ) -> dict[str, Any]:
        """How many alerts (red or yellow readings) proposed settings would have raised in the last ``days``,
        beside how many the readings have now. Stores nothing."""
        view = self._clinician_view(principal, purpose)
        if not 1 <= days <= 366:
            raise BadRequest(f"days must be between 1 and 366 (got {days})", "days")
        end = self.rt.clock()
        start = end - timedelta(days=days)
        out: dict[str, Any] | None = None
        with self.rt.sessions.begin() as session:
            found = self._patient_scope(session, view, patient_id, "monitoring-preview")
            if found is not None:
                pkey, scope = found
                history = store.versions(session, pkey)
                proposed = _parse(body, history[-1].settings)
                readings = store.triaged_readings(session, pkey, start, end, scope)
                trial = store.SettingsVersion(history[-1].version + 1, proposed, start, None, principal.id, None)
                t = store.triager(session, pkey, start, end, scope, history=[trial])
                now_counts = _colour_counts(r.colour for r in readings)
                new_counts = _colour_counts(t.triage(r.values, r.effective)[0].colour for r in readings)
                self._audit(
                    session,
                    principal,
                    "monitoring-preview",
                    "permit",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity=f"Patient/{_said(patient_id)}",
                    detail=f"{len(readings)} reading(s)",
                )
                out = {
                    "days": days,
                    "readings": len(readings),
                    "alerts": new_counts["red"] + new_counts["yellow"],
                    "counts": new_counts,
                    "current": {"alerts": now_counts["red"] + now_counts["yellow"], "counts": now_counts},
                }
        if out is None:
            raise NotFound.resource("Patient", _said(patient_id))
        return out

    # -- status, worklist, adherence ------------------------------------------------------------------------
    def patient_status(
        self,
        principal: Principal,
        patient_id: str,
        start: datetime,
        end: datetime,
        purpose: str | None = None,
        *,
        adherence_from: datetime | None = None,
    ) -> PatientStatus:
        """The patient's status for [start, end); adherence over [adherence_from, end) (default: the same period)."""
        view = self._clinician_view(principal, purpose)
        _check_period(start, end)
        _check_period(adherence_from or start, end)
        status: PatientStatus | None = None
        with self.rt.sessions.begin() as session:
            found = self._patient_scope(session, view, patient_id, "monitoring-status")
            if found is not None:
                pkey, scope = found
                status = self._status(session, patient_id, pkey, scope, start, end, adherence_from or start)
                status.care_teams.extend(self._teams(session, principal, [pkey]).get(pkey, []))
                self._audit(
                    session,
                    principal,
                    "monitoring-status",
                    "permit",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity=f"Patient/{_said(patient_id)}",
                    detail=status.colour.value,
                )
        if status is None:
            raise NotFound.resource("Patient", _said(patient_id))
        return status

    def worklist(
        self,
        principal: Principal,
        start: datetime,
        end: datetime,
        purpose: str | None = None,
        *,
        adherence_from: datetime | None = None,
    ) -> list[PatientStatus]:
        """The status of every patient the clinician may see now (its care teams, consent for treatment),
        most severe first (red, yellow, blue, green; then most unacknowledged readings). Colours over
        [start, end), adherence over [adherence_from, end) (default: the same period)."""
        view = self._clinician_view(principal, purpose)
        _check_period(start, end)
        _check_period(adherence_from or start, end)
        out: list[PatientStatus] = []
        with self.rt.sessions.begin() as session:
            windows = self.readable_windows(session, view)
            ids = dict(
                session.execute(
                    select(m.Patient.patient_key, m.Patient.id).where(m.Patient.patient_key.in_(list(windows)))
                ).all()
            )
            keys = [k for k in windows if k in ids]
            adh_start = adherence_from or start
            data = store.patients_data(
                session, keys, min(start, adh_start), end, self.scope(windows), lookback=True, with_resources=False
            )
            teams = self._teams(session, principal, keys)
            entries = []
            for pkey in keys:
                status = self._status_of(ids[pkey], data[pkey], start, end, adh_start)
                status.care_teams.extend(teams.get(pkey, []))
                out.append(status)
                entries.append(
                    audit.Entry(
                        principal.id,
                        principal.role,
                        "monitoring-status",
                        "permit",
                        purpose=view.purpose,
                        patient_key=pkey,
                        entity=f"Patient/{ids[pkey]}",
                        detail=status.colour.value,
                    )
                )
            audit.append(session, self.rt.keys, entries)  # one append for the page: one lock, one head update
            if not keys:
                self._audit(
                    session, principal, "monitoring-worklist", "permit", purpose=view.purpose, detail="0 patients"
                )
        out.sort(key=lambda s: (-s.colour.severity, -s.open_colour.severity, -s.unacknowledged, s.patient_id))
        return out

    def _teams(self, session: Session, principal: Principal, keys: list[str]) -> dict[str, list[dict[str, str]]]:
        """Per patient key, the clinician's care teams the patient is on (id and name), for the worklist's filter."""
        out: dict[str, list[dict[str, str]]] = {}
        rows = session.execute(
            select(m.CareTeamPatient.patient_key, m.CareTeam.id, m.CareTeam.name)
            .join(m.CareTeam, m.CareTeam.id == m.CareTeamPatient.care_team_id)
            .join(m.CareTeamMember, m.CareTeamMember.care_team_id == m.CareTeam.id)
            .where(m.CareTeamMember.user_id == principal.id)
            .order_by(m.CareTeam.name, m.CareTeam.id)
        ).all()
        wanted = set(keys)
        for pkey, team_id, name in rows:
            if pkey in wanted:
                out.setdefault(pkey, []).append({"id": team_id, "name": name})
        return out

    def _status(
        self,
        session: Session,
        patient_id: str,
        pkey: str,
        scope: ColumnElement[bool],
        start: datetime,
        end: datetime,
        adherence_from: datetime,
    ) -> PatientStatus:
        data = store.patients_data(
            session, [pkey], min(start, adherence_from), end, scope, lookback=True, with_resources=False
        )[pkey]
        return self._status_of(patient_id, data, start, end, adherence_from)

    def _status_of(
        self,
        patient_id: str,
        data: store.PatientData,
        start: datetime,
        end: datetime,
        adherence_from: datetime,
        parts: StatusParts | None = None,
    ) -> PatientStatus:
        """The status of ``data``'s readings for [start, end), from ``parts`` gathered of them already if given."""
        return status_of(patient_id, data, start, end, adherence_from, self.rt.local_zone, parts)

    def status_parts(self, data: store.PatientData, start: datetime, end: datetime) -> StatusParts:
        """The running parts of ``_status_of`` of all of ``data``'s readings."""
        return parts_of(data, start, end)

    def triaged_readings(
        self, principal: Principal, patient_id: str, start: datetime, end: datetime, purpose: str | None = None
    ) -> list[store.TriagedReading]:
        """The patient's readings of [start, end) with their triage (oldest first), for charts and tables."""
        view = self._clinician_view(principal, purpose)
        _check_period(start, end)
        out: list[store.TriagedReading] | None = None
        with self.rt.sessions.begin() as session:
            found = self._patient_scope(session, view, patient_id, "monitoring-readings")
            if found is not None:
                pkey, scope = found
                out = store.triaged_readings(session, pkey, start, end, scope)
                self._audit(
                    session,
                    principal,
                    "monitoring-readings",
                    "permit",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity=f"Patient/{_said(patient_id)}",
                    detail=f"{len(out)} returned",
                )
        if out is None:
            raise NotFound.resource("Patient", _said(patient_id))
        return out

    # -- the Observation serving path's hook ------------------------------------------------------------
    def interpreted(self, session: Session, view: View, rows: Sequence[Any]) -> list[dict[str, Any]]:
        return interpret(self, session, view, rows)


def _values(r: store.TriagedReading) -> tuple[Any, ...]:
    return r.values


def _colour_counts(colours: Any) -> dict[str, int]:
    counts = {c.value: 0 for c in (Colour.RED, Colour.YELLOW, Colour.GREEN)}
    for c in colours:
        counts[c.value] = counts.get(c.value, 0) + 1
    return counts


def _check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequest("a period's start and end need a UTC offset", "period")
    if end <= start:
        raise BadRequest(
            f"the period's end ({end.isoformat()}) must be after its start ({start.isoformat()})", "period"
        )
    if end - start > timedelta(days=400):
        raise BadRequest("a period is at most 400 days", "period")


def _parse(body: Any, base: MonitoringSettings) -> MonitoringSettings:
    try:
        return parse_settings(body, base)
    except SettingsError as exc:
        raise Unprocessable(exc.message, exc.path) from None


def _valid_from(body: Any, now: datetime) -> datetime:
    raw = body.get("valid_from") if isinstance(body, dict) else None
    if raw is None:
        return now
    if not isinstance(raw, str):
        raise BadRequest(f"valid_from must be a date-time with an offset, got {raw!r}", "valid_from")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"valid_from is not a date-time: {raw!r}", "valid_from") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"valid_from needs a UTC offset: {raw!r}", "valid_from")
    return parsed


def _note(body: Any) -> str | None:
    raw = body.get("note") if isinstance(body, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > 2000:
        raise BadRequest("note must be a text of at most 2000 characters", "note")
    return raw


__all__ = ["MonitoringReads", "PatientStatus", "interpret", "review_summary"]
