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
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from homediag import consent as consent_model
from homediag.clock import from_store
from homediag.errors import Forbidden
from homediag.lazy import lazily
from homediag.store import models as m
from homediag.users import Principal

from .evaluation_alerts import Memo, first_acknowledgements, triaged
from .evaluation_pass import Reading, chunks
from .observations import ObservationReads
from .view import View, Window

# pyarrow (with numpy, about 50 MB) is loaded by the first evaluation, not by every server worker at start;
# pyarrow.compute is imported where it is used (finding a submodule would load its package at once)
pa = lazily("pyarrow")

EVALUATION_ROLE = "evaluator"
ACCEPTED = ("created", "duplicate")
PASS_PATIENTS = 10  # patients read, parsed and triaged at once: one page


# The columns of a page of evaluated readings (``EvaluationReads.evaluation_readings``): one row per stored
# Observation and component (an Observation without components has one row with the component columns null).
@cache
def reading_page() -> pa.Schema:
    return pa.schema(
        [
            ("reading", pa.string()),  # the Observation's id in the evaluator's pseudonym domain
            ("patient", pa.string()),  # the patient's pseudonym
            ("device", pa.string()),  # the device's pseudonym; null if none
            ("vendor", pa.string()),  # the device's manufacturer (an organisation, never a person)
            ("adapter", pa.string()),
            ("primary_code", pa.string()),  # observation.code: the Observation's primary (MDC) code
            ("status", pa.string()),
            ("effective", pa.timestamp("us", tz="UTC")),  # the reading's time as the evaluator sees it (View.shift)
            ("device_clock_set", pa.bool_()),  # false: the device-time extension says the gateway's time stands in
            ("delay_device_to_gateway_s", pa.float64()),  # gateway receive time - reading time
            ("delay_gateway_to_platform_s", pa.float64()),  # platform receive time - gateway receive time
            ("first", pa.bool_()),  # the first row of its Observation (carries the Observation's own value)
            ("value", pa.float64()),  # the Observation's own value: valueQuantity.value, else valueBoolean as 1/0
            ("unit", pa.string()),
            ("has_value", pa.bool_()),  # whether the Observation has a valueQuantity or valueBoolean of its own
            ("component_code", pa.string()),  # the component's code (CodeableConcept as JSON text); null: none
            ("component_value", pa.float64()),
            ("component_unit", pa.string()),
            ("component_has_value", pa.bool_()),
        ]
    )


@dataclass(frozen=True)
class EvaluatedAlert:
    """A reading triaged red or yellow, as the evaluator sees it: pseudonyms, shifted time, delays only."""

    reading: str
    patient: str
    colour: str  # red | yellow
    measures: str  # the measures at that colour, comma-separated (monitoring's names: systolic, pulse, ...)
    effective: datetime  # shifted per patient
    to_acknowledge_s: float | None  # first acknowledgement - reading time; None: not acknowledged
    arrival_to_acknowledge_s: float | None  # first acknowledgement - platform receive time


@dataclass
class EvaluationPart:
    """A part's readings and alerts from one pass (``EvaluationReads.evaluation_part``): read ``pages`` first;
    ``alerts`` is complete (sorted by patient, time and reading) once they are exhausted."""

    pages: Iterator[pa.Table]
    alerts: list[EvaluatedAlert]


@dataclass(frozen=True)
class EvaluatedAcknowledgement:
    """The first acknowledgement of a reading, as the evaluator sees it."""

    reading: str
    patient: str
    colour: str  # the reading's triage colour when it was acknowledged
    scope: str  # readings (acknowledged one by one) | all-green (every green reading of a period)
    acknowledged: datetime  # shifted per patient
    to_acknowledge_s: float  # acknowledgement - reading time
    arrival_to_acknowledge_s: float | None  # acknowledgement - platform receive time


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


class _Shift:
    """``View.shift`` for a page of readings at once: each patient's offset computed once, added to every time
    of the patient in Arrow (cut to the day where the view coarsens)."""

    def __init__(self, view: View, patient_of: dict[str, str]) -> None:
        self.view = view
        self.micros = {k: view.offset(pid) // timedelta(microseconds=1) for k, pid in patient_of.items()}

    def apply(self, times: pa.Array, keys: list[str], indices: pa.Array) -> pa.Array:
        """``times`` (naive UTC) of the patients ``keys[indices]``, as the view shows them (UTC)."""
        import pyarrow.compute as pc

        offsets = pa.array([self.micros[k] for k in keys], pa.int64()).take(indices)
        moved = pc.add(times.cast(pa.int64()), offsets).cast(pa.timestamp("us", tz="UTC"))
        return pc.floor_temporal(moved, unit="day") if self.view.coarsen == "day" else moved


def _seconds(durations: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.divide(durations.cast(pa.int64()).cast(pa.float64()), 1e6)


def _flag(value: Any) -> float | None:
    """A JSON boolean as the engine returns it (SQLite 1/0, PostgreSQL 'true'/'false') as 1.0/0.0."""
    return None if value is None else 1.0 if value in (1, True, "true") else 0.0


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _monday(moment: datetime, zone: Any) -> date:
    day = from_store(moment).astimezone(zone).date()
    return day - timedelta(days=day.weekday())


def _page(
    rows: list[Reading],
    view: View,
    shift: _Shift,
    shown_patient: dict[str, str],
    shown_device: dict[str, str],
    devices: dict[str, str | None],
) -> tuple[pa.Table, list[str]]:
    """The ``reading_page()`` rows of ``rows`` (one per Observation and component), and each Observation's id as
    the view shows it."""
    import pyarrow.compute as pc

    shown = [view.shown_id("Observation", r.id) for r in rows]
    take: list[int] = []  # the Observation of each page row
    first: list[bool] = []
    comps = []
    for i, r in enumerate(rows):
        for j, c in enumerate(r.components):
            take.append(i)
            first.append(j == 0)
            comps.append(c)
    index = pa.array(take, pa.int64())
    (ids, pkeys, code, value, unit, effective, gateway, received, device, adapter, status, top_bool, top_qty,
     _, _, _) = zip(*rows, strict=True)  # fmt: skip
    ccode, cval, cunit, cbool, cqty = zip(*comps, strict=True)
    eff, gw, rc = (pa.array(t, pa.string()).cast(pa.timestamp("us")) for t in (effective, gateway, received))
    keys_arr = pa.array(pkeys, pa.string()).dictionary_encode()
    uniq = keys_arr.dictionary.to_pylist()
    dev_arr = pa.array(device, pa.string()).dictionary_encode()
    dev_uniq = dev_arr.dictionary.to_pylist()
    per_reading = {
        "reading": pa.array(shown, pa.string()),
        "patient": pa.array([shown_patient[k] for k in uniq], pa.string()).take(keys_arr.indices),
        "device": pa.array([shown_device.get(d) for d in dev_uniq], pa.string()).take(dev_arr.indices),
        "vendor": pa.array([devices.get(d) for d in dev_uniq], pa.string()).take(dev_arr.indices),
        "adapter": pa.array(adapter, pa.string()),
        "primary_code": pa.array(code, pa.string()),
        "status": pa.array(status, pa.string()),
        "effective": shift.apply(eff, uniq, keys_arr.indices),
        "device_clock_set": pa.array([not r.clock_off for r in rows], pa.bool_()),
        "delay_device_to_gateway_s": _seconds(pc.subtract(gw, eff)),
        "delay_gateway_to_platform_s": _seconds(pc.subtract(rc, gw)),
        "value": pa.array(
            [v if q else _flag(b) for v, q, b in zip(value, top_qty, top_bool, strict=True)], pa.float64()
        ),
        "unit": pa.array(
            [u if q else "1" if b is not None else None for u, q, b in zip(unit, top_qty, top_bool, strict=True)],
            pa.string(),
        ),
        "has_value": pa.array([q or b is not None for q, b in zip(top_qty, top_bool, strict=True)], pa.bool_()),
    }
    columns = {name: column.take(index) for name, column in per_reading.items()}
    columns |= {
        "first": pa.array(first, pa.bool_()),
        "component_code": pa.array(ccode, pa.string()),
        "component_value": pa.array(
            [_number(v) if q else _flag(b) for v, q, b in zip(cval, cqty, cbool, strict=True)], pa.float64()
        ),
        "component_unit": pa.array(
            [u if q else "1" if b is not None else None for u, q, b in zip(cunit, cqty, cbool, strict=True)],
            pa.string(),
        ),
        "component_has_value": pa.array(
            [c is not None and (q or b is not None) for c, q, b in zip(ccode, cqty, cbool, strict=True)], pa.bool_()
        ),
    }
    return pa.Table.from_pydict({n: columns[n] for n in reading_page().names}, schema=reading_page()), shown


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

    def evaluation_part(
        self, principal: Principal, patients: Sequence[str], *, purpose: str | None = None
    ) -> EvaluationPart:
        """The readings of ``patients`` (the evaluator's pseudonyms) it may receive, and those of them monitoring
        triages red or yellow (by the patient's thresholds in force at the reading's time: ``homediag.monitoring``,
        the one triage engine) with their first acknowledgement as delays only: from one pass over the readings
        (``access/evaluation_pass.py``). The decision and one audit record per patient (with the count of
        readings) are committed first; the alerts are audited per patient (with their count) when the pages
        have been read.

        Pages of ``reading_page()`` rows in patient and time order, from the store's own columns (code, value, unit,
        times, device, adapter) and, from each resource's stored text parsed once, its components and the
        device-time flag. What ``View.shown`` would make of them is applied per patient, once: its pseudonym and
        its time shift (``View.shown_id``, ``View.shift``); per device its pseudonym and per reading its own. Only
        allow-listed elements are read, so no identifier, name or free text can reach the page."""
        view = self._evaluator_view(principal, purpose)
        with self.rt.sessions.begin() as session:
            people, windows, scope = self._part_scope(session, view, patients)
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
        part = EvaluationPart(iter(()), [])
        if counts:
            part.pages = self._part_pages(principal, view, people, windows, part.alerts)
        return part

    def _part_pages(
        self,
        principal: Principal,
        view: View,
        people: dict[str, str],
        windows: dict[str, Window],
        alerts: list[EvaluatedAlert],
    ) -> Iterator[pa.Table]:
        shown_patient = {k: view.shown_id("Patient", pid) for k, pid in people.items()}
        shift = _Shift(view, people)
        devices: dict[str, str | None] = {}  # device id -> its manufacturer, read as the pages meet them
        shown_device: dict[str, str] = {}
        flagged: dict[str, tuple[str, str, datetime, Any]] = {}  # id -> (its pseudonym, patient key, time, triage)
        memo = Memo()
        with self.rt.sessions() as session:  # reads only: the audit below is a short transaction of its own
            conn = session.connection()

            def scope_of(keys: list[str]) -> ColumnElement[bool]:
                return self.scope({k: windows[k] for k in keys})

            for chunk in chunks(conn, sorted(windows), scope_of, PASS_PATIENTS):
                keys = sorted({r.patient_key for r in chunk.rows})
                met = sorted({r.device for r in chunk.rows if r.device is not None} - devices.keys())
                for start in range(0, len(met), 500):
                    query = select(m.Device.id, m.Device.manufacturer).where(m.Device.id.in_(met[start : start + 500]))
                    devices |= dict(session.execute(query).all())  # type: ignore[arg-type]
                shown_device |= {d: view.shown_id("Device", d) for d in met if d in devices}
                page, shown = _page(chunk.rows, view, shift, shown_patient, shown_device, devices)
                for i, (at, result) in triaged(session, chunk, scope_of(keys), memo).items():
                    row = chunk.rows[i]
                    flagged[row.id] = (shown[i], row.patient_key, at, result)
                yield page
            times = first_acknowledgements(session, sorted(windows), None, flagged)
            counts: dict[str, int] = {}
            for oid, (shown_id, pkey, at, result) in flagged.items():
                pid = people[pkey]
                effective, received, acked, _ = times.get(oid, (None, None, None, None))
                measures = ",".join(sorted({v.measure for v in result.verdicts if v.colour == result.colour}))
                alerts.append(
                    EvaluatedAlert(
                        shown_id,
                        shown_patient[pkey],
                        str(result.colour),
                        measures,
                        view.shift(pid, at),
                        (acked - effective).total_seconds() if acked is not None and effective is not None else None,
                        (acked - received).total_seconds() if acked is not None and received is not None else None,
                    )
                )
                counts[pkey] = counts.get(pkey, 0) + 1
        alerts.sort(key=lambda a: (a.patient, a.effective, a.reading))
        with self.rt.sessions.begin() as session:
            for pkey, n in sorted(counts.items()):
                self._audit(session, principal, "evaluation-alerts", "permit", purpose=view.purpose, patient_key=pkey,
                            entity="Observation", detail=f"{n} alerts")  # fmt: skip

    def _part_scope(
        self, session: Session, view: View, patients: Sequence[str]
    ) -> tuple[dict[str, str], dict[str, Window], ColumnElement[bool]]:
        """For the evaluator's pseudonyms ``patients``: patient key -> platform id, the readable windows, their SQL."""
        real = [pid for shown in patients if (pid := view.real_id("Patient", shown)) is not None]
        people = dict(session.execute(select(m.Patient.patient_key, m.Patient.id).where(m.Patient.id.in_(real))).all())
        windows = self.readable_windows(session, view, list(people)) if people else {}
        return people, windows, self.scope(windows)

    def evaluation_acknowledgements(
        self, principal: Principal, patients: Sequence[str], *, purpose: str | None = None
    ) -> list[EvaluatedAcknowledgement]:
        """The first acknowledgement of every reading of ``patients`` the evaluator may receive: its triage colour
        when acknowledged, the review's scope, and the times from the reading and from its arrival as delays (the
        acknowledgement's own time shifted per patient); never who acknowledged or the note. Audited."""
        view = self._evaluator_view(principal, purpose)
        with self.rt.sessions.begin() as session:
            people, windows, scope = self._part_scope(session, view, patients)
            if not windows:
                return []
            times = first_acknowledgements(session, sorted(windows), scope)
            out = []
            counts: dict[str, int] = {}
            for oid, (effective, received, acked, row) in times.items():
                pid = people[row.patient_key]
                out.append(
                    EvaluatedAcknowledgement(
                        view.shown_id("Observation", oid),
                        view.shown_id("Patient", pid),
                        row.colour,
                        row.scope,
                        view.shift(pid, acked),
                        (acked - effective).total_seconds(),
                        (acked - received).total_seconds() if received is not None else None,
                    )
                )
                counts[row.patient_key] = counts.get(row.patient_key, 0) + 1
            for pkey, n in sorted(counts.items()):
                self._audit(session, principal, "evaluation-acknowledgements", "permit", purpose=view.purpose,
                            patient_key=pkey, entity="Task", detail=f"{n} readings acknowledged")  # fmt: skip
        return sorted(out, key=lambda a: (a.patient, a.acknowledged, a.reading))

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
