"""The patient page of the web app: one patient's readings of a period, the uploads of that patient the
platform refused or held ("why no data?"), and the patient's consents in brief.

Decided like every read: a clinician, the patient on one of its care teams, a consent permitting
treatment (for the readings: at their time). The page shows identity, so a permit is audited as a
re-identification; a deny answers 404 exactly as a patient that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from homediag.clock import to_store
from homediag.errors import NotFound
from homediag.monitoring import ingested
from homediag.store import models as m
from homediag.users import Principal

from . import triage
from .readings import Reading, aware, reading_from, shapes
from .worklist import WorklistReads, device_and_gateway, identity_of

REFUSED_OUTCOMES = ("rejected", "held")
MAX_UPLOADS = 50


@dataclass(frozen=True)
class RefusedUpload:
    id: str
    received_at: datetime
    outcome: str  # rejected | held
    adapter: str | None
    device: str | None
    issues: list[dict[str, Any]]  # OperationOutcome issues: severity, code, diagnostics, expression


@dataclass(frozen=True)
class ConsentVersion:
    consent_id: str
    version: int
    status: str
    purposes: list[str]
    period: tuple[str | None, str | None]
    data_period: tuple[str | None, str | None] | None
    recorded_at: datetime


@dataclass
class PatientPage:
    patient_id: str
    name: str
    birth_date: date | None
    start: datetime
    end: datetime
    readings: list[Reading]
    bands: list[triage.Band]
    uploads: list[RefusedUpload]
    consents: list[ConsentVersion]
    days_measured: set[date] = field(default_factory=set)
    assessment: triage.Assessment | None = None  # homediag.monitoring's status of the period
    patient_key: str | None = None  # the store's key of the patient (``web.predraw`` holds the shown charts by it)


def _period(p: Any) -> tuple[str | None, str | None]:
    p = p if isinstance(p, dict) else {}
    return (p.get("start"), p.get("end"))


def consent_version(row: m.ConsentVersion) -> ConsentVersion:
    resource = row.resource or {}
    provision = resource.get("provision") or {}
    purposes = sorted(
        {
            str(c.get("code"))
            for part in [provision, *(provision.get("provision") or [])]
            for c in part.get("purpose") or []
            if c.get("code")
        }
    )
    data_period = provision.get("dataPeriod")
    return ConsentVersion(
        consent_id=row.consent_id,
        version=row.version,
        status=row.status,
        purposes=purposes,
        period=_period(provision.get("period")),
        data_period=_period(data_period) if data_period else None,
        recorded_at=aware(row.recorded_at),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class PatientHeader:
    patient_id: str
    name: str
    birth_date: date | None


class PatientPageReads(WorklistReads):
    def patient_page_header(self, principal: Principal, patient_id: str) -> PatientHeader:
        """Who the patient is (name, date of birth) for the heading of a page about it; decided and audited as a
        re-identification like the patient page; 404 for a patient the clinician may not see."""
        view = self._web_view(principal)
        header: PatientHeader | None = None
        with self.rt.sessions.begin() as session:
            pkey = session.execute(select(m.Patient.patient_key).where(m.Patient.id == patient_id)).scalar()
            windows = self.readable_windows(session, view, [pkey]) if pkey else {}
            permit = pkey is not None and pkey in windows
            if permit:
                assert pkey is not None
                name, born = identity_of(session, self.rt, pkey)
                header = PatientHeader(patient_id, name, born)
            self._audit(
                session,
                principal,
                "re-identify" if permit else "read",
                "permit" if permit else "deny",
                purpose=view.purpose,
                patient_key=pkey,
                entity="patient-page",
                detail="web page heading: name, date of birth"
                if permit
                else "not in care with consent, or no such patient",
            )
        if header is None:
            raise NotFound.resource("Patient", patient_id)
        return header

    def patient_page(self, principal: Principal, patient_id: str, start: datetime, end: datetime) -> PatientPage:
        view = self._web_view(principal)
        page: PatientPage | None = None
        with self.rt.sessions.begin() as session:
            patient = session.execute(select(m.Patient).where(m.Patient.id == patient_id)).scalar_one_or_none()
            pkey = patient.patient_key if patient is not None else None
            windows = self.readable_windows(session, view, [pkey]) if pkey else {}
            if pkey is None or pkey not in windows:
                reason = "no such patient"
                if pkey is not None:
                    reason = (
                        self._relation_reason(session, view, pkey)
                        or self.decide(session, view.purpose, pkey, None).reason
                    )
                self._audit(
                    session,
                    principal,
                    "read",
                    "deny",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity="patient-page",
                    detail=reason,
                )
            else:
                assert patient is not None
                name, born = identity_of(session, self.rt, pkey)
                in_range = (
                    m.Observation.effective_start >= to_store(start),
                    m.Observation.effective_start < to_store(end),
                )
                rows = session.execute(
                    select(*_ROW_COLUMNS)
                    .where(self.scope(windows), *in_range)
                    .order_by(m.Observation.effective_start, m.Observation.id)
                ).all()
                readings, devices = _readings(session, pkey, list(rows))
                # monitoring's data of the period loaded once, for the readings' colours and the page's status
                data = triage.load(session, [pkey], self.scope(windows), start, end)[pkey]
                bands = triage.assess_readings(session, pkey, self.scope(windows), start, end, readings, data)
                status = {patient.id: triage.assess(self, session, patient.id, data, start, end)}
                uploads = [
                    RefusedUpload(
                        u.id,
                        aware(u.received_at),  # type: ignore[arg-type]
                        u.outcome,
                        u.adapter,
                        devices.get(u.device_id or "") or _stated_device(u.redacted),
                        list((u.issues or {}).get("issue") or []),
                    )
                    for u in session.execute(
                        select(m.Upload)
                        .where(m.Upload.patient_key == pkey, m.Upload.outcome.in_(REFUSED_OUTCOMES))
                        .order_by(m.Upload.received_at.desc())
                        .limit(MAX_UPLOADS)
                    ).scalars()
                ]
                consents = [
                    consent_version(v)
                    for v in session.execute(
                        select(m.ConsentVersion)
                        .join(m.Consent, m.Consent.id == m.ConsentVersion.consent_id)
                        .where(m.Consent.patient_key == pkey)
                        .order_by(m.ConsentVersion.recorded_at.desc(), m.ConsentVersion.version.desc())
                    ).scalars()
                ]
                self._audit(
                    session,
                    principal,
                    "re-identify",
                    "permit",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity="patient-page",
                    detail=(
                        f"web patient page: identity, {len(readings)} readings {start.date()}..{end.date()},"
                        f" {len(uploads)} refused or held uploads, {len(consents)} consent versions"
                    ),
                )
                zone = self.rt.local_zone
                page = PatientPage(
                    patient.id,
                    name,
                    born,
                    start,
                    end,
                    readings,
                    bands,
                    uploads,
                    consents,
                    {r.effective.astimezone(zone).date() for r in readings},
                    status.get(patient.id),
                    pkey,
                )
        if page is None:
            raise NotFound.resource("Patient", patient_id)
        return page


_ROW_COLUMNS = (
    m.Observation.id,
    m.Observation.device_id,
    m.Observation.upload_id,
    m.Observation.effective_start,
    m.Observation.received_at,
    m.Observation.gateway_received_at,
)


def _readings(session: Session, pkey: str, rows: list[Any]) -> tuple[list[Reading], dict[str, str]]:
    """The shown readings of Observation ``rows`` (``_ROW_COLUMNS``, in the page's order), each with the flags of
    the status observations among the rows about it; and the devices' names by id."""
    devices, gateways = device_and_gateway(session, rows)
    shaped = shapes(session, [(pkey, r.id) for r in rows])  # resources parsed once per process
    readings: list[Reading] = []
    flags: dict[str, list[str]] = {}
    for row in rows:
        shape = shaped[row.id]
        if shape.about is not None:
            flags.setdefault(shape.about, []).extend(shape.flags)
            continue
        reading = reading_from(shape, row, devices.get(row.device_id or "", ""), gateways.get(row.upload_id or "", ""))
        if reading is not None:
            readings.append(reading)
    for reading in readings:
        reading.flags = flags.get(reading.id, [])
    return readings, devices


def ingested_readings(
    session: Session, patient_key: str, observation_ids: list[str], start: datetime, end: datetime
) -> list[Reading]:
    """The readings of [start, end) among the Observations ``observation_ids`` that ingest has just stored for the
    patient, shaped, flagged and triaged (under the settings in force) exactly as ``patient_page`` does with the
    same functions. No decision and no audit: this is not a read for anyone. ``web.predraw`` calls it, after
    ingest's commit, with the ids ingest answered, only to draw ahead the charts of a page already shown with these
    readings added: such a chart is found only by the key a page computes from its own decided and audited read
    (``web.drawn``), so what is drawn here is shown to nobody who may not see it, and decides nothing."""
    if not observation_ids:
        return []
    ids = m.Observation.id.in_(observation_ids)
    rows = session.execute(
        select(*_ROW_COLUMNS)
        .where(
            m.Observation.patient_key == patient_key,
            ids,
            m.Observation.effective_start >= to_store(start),
            m.Observation.effective_start < to_store(end),
        )
        .order_by(m.Observation.effective_start, m.Observation.id)
    ).all()
    readings, _ = _readings(session, patient_key, list(rows))
    if readings:  # their triage alone (monitoring's, as the page's read finds it), not the period's readings again
        data = ingested.triaged_new(session, patient_key, [(r.id, r.effective) for r in readings], start, end)
        triage.assess_readings(session, patient_key, ids, start, end, readings, data)
    return readings


def _stated_device(redacted: Any) -> str | None:
    """The device as the gateway named it in a refused envelope (the device may never have been stored)."""
    device = redacted.get("device") if isinstance(redacted, dict) else None
    if not isinstance(device, dict):
        return None
    return " ".join(str(device[k]) for k in ("manufacturer", "model", "serial") if device.get(k)) or None
