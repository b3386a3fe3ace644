"""Reads for a pilot's evaluation (FIERS): the evaluator's cohort, its readings, and aggregates without
identities (upload outcomes for device reliability; enrolment, research consent and withdrawal events).

An evaluator receives only patients whose consent permits research use (HRESCH) now, only readings of
the data times that consent covers, and sees them as every read outside care shows them
(``View.shown``: its own pseudonym domain, no identifiers). Times the evaluator could use to link a
reading to the platform (the gateway's and the platform's receive times) are given only as delays
from the reading's own time, never as clock times. Every read is decided here and audited.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.orm import Session

from homediag import consent as consent_model
from homediag.clock import from_store
from homediag.errors import Forbidden
from homediag.store import models as m
from homediag.users import Principal

from .observations import ObservationReads
from .view import View, Window

EVALUATION_ROLE = "evaluator"
ACCEPTED = ("created", "duplicate")


@dataclass(frozen=True)
class EvaluatedReading:
    """One Observation as the evaluator sees it, with what the tidy table needs beside it."""

    resource: dict[str, Any]  # after View.shown
    vendor: str | None  # the device's manufacturer (an organisation, never a person)
    adapter: str | None
    device_to_gateway_s: float | None  # gateway receive time - reading time
    gateway_to_platform_s: float | None  # platform receive time - gateway receive time


@dataclass(frozen=True)
class UploadOutcomes:
    """Uploads counted by day, adapter, vendor, outcome and reason; no patient, device or free text."""

    day: date
    adapter: str
    vendor: str
    outcome: str
    reason: str
    uploads: int


@dataclass(frozen=True)
class CohortEvent:
    """Patients counted by the ISO week (its Monday) an event happened in; no identity."""

    week: date
    event: str  # enrolled | research-consent | research-withdrawn
    patients: int


def _reason(issues: Any) -> str:
    """A refusal's reason as categories only: the first issue's FHIR IssueType code and where (the element
    path without indices); never its diagnostics, which are free text."""
    try:
        issue = issues["issue"][0]
    except (TypeError, KeyError, IndexError):
        return "unspecified"
    code = str(issue.get("code") or "unspecified")
    where = (issue.get("expression") or [""])[0] or ""
    path = ".".join(part.split("[")[0] for part in str(where).split(".")[:3])
    return f"{code} at {path}" if path else code


def _window_sql(window: Window, column: Any) -> ColumnElement[bool]:
    spans: list[ColumnElement[bool]] = []
    for start, end in window.intervals:
        clauses: list[ColumnElement[bool]] = []
        if start is not None:
            clauses.append(column >= start)
        if end is not None:
            clauses.append(column < end)
        spans.append(and_(*clauses) if clauses else true())
    return or_(*spans)


def _monday(moment: datetime, zone: Any) -> date:
    day = from_store(moment).astimezone(zone).date()
    return day - timedelta(days=day.weekday())


class EvaluationReads(ObservationReads):
    def _evaluator_view(self, principal: Principal, purpose: str | None) -> View:
        if principal.role != EVALUATION_ROLE:
            raise Forbidden(f"the role '{principal.role}' may not receive evaluation data (only an evaluator)")
        return self.view(principal, purpose)

    def _cohort_windows(self, session: Session, view: View, pilot: str | None) -> dict[str, Window]:
        keys = None
        if pilot is not None:
            keys = list(session.execute(select(m.Patient.patient_key).where(m.Patient.pilot == pilot)).scalars())
        return self.readable_windows(session, view, keys)

    def evaluation_cohort(
        self, principal: Principal, *, pilot: str | None = None, purpose: str | None = None
    ) -> list[str]:
        """The evaluator's pseudonyms of the patients whose data it may receive now (sorted), audited."""
        view = self._evaluator_view(principal, purpose)
        with self.rt.sessions.begin() as session:
            windows = self._cohort_windows(session, view, pilot)
            ids = session.execute(select(m.Patient.id).where(m.Patient.patient_key.in_(list(windows)))).scalars()
            shown = sorted(view.shown_id("Patient", pid) for pid in ids)
            self._audit(
                session,
                principal,
                "evaluation-cohort",
                "permit",
                purpose=view.purpose,
                entity="Patient",
                detail=f"{len(shown)} patients" + (f" of pilot {pilot}" if pilot else ""),
            )
        return shown

    def evaluation_readings(
        self, principal: Principal, patients: Sequence[str], *, purpose: str | None = None, batch: int = 2000
    ) -> Iterator[EvaluatedReading]:
        """The readings of ``patients`` (the evaluator's pseudonyms) it may receive, streamed in patient and
        time order. The decision and one audit record per patient (with the count) are committed first."""
        view = self._evaluator_view(principal, purpose)
        with self.rt.sessions.begin() as session:
            real = [pid for shown in patients if (pid := view.real_id("Patient", shown)) is not None]
            keys = list(session.execute(select(m.Patient.patient_key).where(m.Patient.id.in_(real))).scalars())
            windows = self.readable_windows(session, view, keys) if keys else {}
            scope = self.scope(windows)
            counts = session.execute(
                select(m.Observation.patient_key, func.count())
                .where(scope)
                .group_by(m.Observation.patient_key)
                .order_by(m.Observation.patient_key)
            ).all()
            for pkey, n in counts:
                self._audit(
                    session,
                    principal,
                    "evaluation-export",
                    "permit",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity="Observation",
                    detail=f"{n} readings",
                )
        if not counts:
            return
        stmt = (
            select(
                m.Observation.resource,
                m.Observation.effective_start,
                m.Observation.gateway_received_at,
                m.Observation.received_at,
                m.Observation.adapter,
                m.Device.manufacturer,
            )
            .outerjoin(m.Device, m.Device.id == m.Observation.device_id)
            .where(scope)
            .order_by(m.Observation.patient_key, m.Observation.effective_start, m.Observation.id)
            .execution_options(yield_per=batch)
        )
        with self.rt.sessions() as session:
            for resource, effective, gateway, received, adapter, vendor in session.execute(stmt):
                yield EvaluatedReading(
                    view.shown(resource),
                    vendor,
                    adapter,
                    (gateway - effective).total_seconds() if gateway is not None else None,
                    (received - gateway).total_seconds() if gateway is not None else None,
                )

    def evaluation_upload_outcomes(
        self, principal: Principal, *, pilot: str | None = None, purpose: str | None = None
    ) -> list[UploadOutcomes]:
        """Uploads counted by day, adapter, vendor, outcome and reason: those of patients whose research
        consent covers the upload's time, and those refused before any patient was identified (a device's
        fault, nobody's data). Audited with the total."""
        view = self._evaluator_view(principal, purpose)
        zone = self.rt.local_zone
        with self.rt.sessions.begin() as session:
            windows = self._cohort_windows(session, view, pilot)
            open_keys = [k for k, w in windows.items() if w.is_open]
            clauses: list[ColumnElement[bool]] = [m.Upload.patient_key.is_(None)]
            if open_keys:
                clauses.append(m.Upload.patient_key.in_(open_keys))
            clauses += [
                and_(m.Upload.patient_key == k, _window_sql(w, m.Upload.received_at))
                for k, w in windows.items()
                if not w.is_open
            ]
            rows = session.execute(
                select(
                    m.Upload.received_at,
                    m.Upload.adapter,
                    func.coalesce(m.Device.manufacturer, "unknown"),
                    m.Upload.outcome,
                    m.Upload.issues,
                )
                .outerjoin(m.Device, m.Device.id == m.Upload.device_id)
                .where(or_(*clauses))
                .order_by(m.Upload.received_at, m.Upload.id)
            ).all()
            tally: dict[tuple[date, str, str, str, str], int] = {}
            for received, adapter, made_by, outcome, issues in rows:
                reason = "accepted" if outcome in ACCEPTED else _reason(issues)
                day = from_store(received).astimezone(zone).date()
                key = (day, adapter or "unknown", made_by, outcome, reason)
                tally[key] = tally.get(key, 0) + 1
            self._audit(
                session,
                principal,
                "evaluation-uploads",
                "permit",
                purpose=view.purpose,
                entity="upload",
                detail=f"{len(rows)} uploads counted, no patient named",
            )
        return [UploadOutcomes(*key, n) for key, n in sorted(tally.items())]

    def evaluation_cohort_events(
        self, principal: Principal, *, pilot: str | None = None, purpose: str | None = None
    ) -> list[CohortEvent]:
        """Enrolments, research consents and their withdrawals, counted per ISO week for the whole pilot:
        counts only, no patient is named (the denominators of enrolment and retention). Audited."""
        view = self._evaluator_view(principal, purpose)
        zone = self.rt.local_zone
        with self.rt.sessions.begin() as session:
            patients = select(m.Patient.patient_key, m.Patient.enrolled_at)
            if pilot is not None:
                patients = patients.where(m.Patient.pilot == pilot)
            enrolled = {k: at for k, at in session.execute(patients).all()}
            tally: dict[tuple[date, str], int] = {}
            for at in enrolled.values():
                key = (_monday(at, zone), "enrolled")
                tally[key] = tally.get(key, 0) + 1
            versions = session.execute(
                select(m.ConsentVersion.consent_id, m.ConsentVersion.resource, m.ConsentVersion.recorded_at)
                .join(m.Consent, m.Consent.id == m.ConsentVersion.consent_id)
                .where(m.Consent.patient_key.in_(list(enrolled)))
                .order_by(m.ConsentVersion.consent_id, m.ConsentVersion.version)
            ).all()
            permitting: dict[str, bool] = {}
            for consent_id, resource, recorded in versions:
                try:
                    record = consent_model.parse_consent(resource)
                except consent_model.ConsentError:
                    continue
                now = record.status == "active" and _speaks_for(record.provision, "HRESCH")
                before = permitting.get(consent_id, False)
                if now != before:
                    key = (_monday(recorded, zone), "research-consent" if now else "research-withdrawn")
                    tally[key] = tally.get(key, 0) + 1
                permitting[consent_id] = now
            self._audit(
                session,
                principal,
                "evaluation-events",
                "permit",
                purpose=view.purpose,
                entity="Consent",
                detail=f"cohort events of {len(enrolled)} patients counted per week, no patient named",
            )
        return [CohortEvent(week, event, n) for (week, event), n in sorted(tally.items())]


def _speaks_for(provision: consent_model.Provision, purpose: str) -> bool:
    """Whether a permit anywhere in the provision tree names ``purpose``."""
    if provision.type == "permit" and purpose in provision.purposes:
        return True
    return any(_speaks_for(p, purpose) for p in provision.provisions)
