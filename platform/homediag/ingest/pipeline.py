"""The one write path behind both fronts (``/ingest`` envelopes and PHD gateway FHIR).

A front turns what it received into patients, devices and Observation rows; everything else happens
here, the same for both: the unit of work (one ``rt.sessions.begin()`` per envelope or PHD request)
with the upload log kept whatever happens, admitting a patient and a device for the sending gateway,
the future-date check, building and storing the rows (one insert, idempotent on ``dedup``; devices
upserted), finishing the upload (outcome, counters, issues) and the audit entries.

A step refuses by raising a ``homediag.errors.ServiceError`` carrying its issues: ``unit`` keeps the
upload as ``rejected`` with them and lets the front word the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from homediag import audit, care
from homediag.clock import to_store, utcnow
from homediag.errors import ServiceError, Unprocessable
from homediag.fhir_profiles import Issue, operation_outcome
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.store.repositories import devices, observations, patients
from homediag.users import Principal

from .uploadlog import new_upload

log = logging.getLogger(__name__)

T = TypeVar("T")

_KEPT = "the {what} is kept in the upload log but not stored"
EARLIEST_READING = datetime(2000, 1, 1, tzinfo=UTC)
"""No home device reading is older: an earlier device time is a clock that was never set."""


def not_enrolled(what: str) -> str:
    """What a reading of a patient not (or no longer) in the pilot is refused with."""
    return "the patient is not enrolled in the pilot; " + _KEPT.format(what=what)


@dataclass(frozen=True)
class Admitted:
    """A patient the sending gateway may upload for: its public id and patient key."""

    id: str
    key: str
    enrolled_at: datetime | None = None


class Pipeline:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    # -- the unit of work ---------------------------------------------------------------------------
    def unit(
        self,
        sender: Principal,
        body: bytes,
        *,
        adapter: str | None,
        redacted: Any,
        what: str,
        work: Callable[[Session, m.Upload], T],
        refused: Callable[[m.Upload, ServiceError], T],
        rejected: int = 1,
    ) -> T:
        """Keep ``body`` in the upload log and run ``work`` in the same transaction. A ``ServiceError`` from
        it refuses the upload (kept, with its issues); any other failure is ours: the transaction is
        rolled back and the body kept in a new one as rejected (a ``fatal`` issue, status 500)."""
        try:
            with self.rt.sessions.begin() as session:
                upload = new_upload(session, self.rt.keys, sender, body, adapter=adapter, redacted=redacted)
                try:
                    return work(session, upload)
                except ServiceError as exc:
                    self.finish(session, sender, upload, "rejected", exc.issues, rejected=rejected)
                    return refused(upload, exc)
        except (OperationalError, InterfaceError):
            raise  # the database is away: the app answers 503 + Retry-After and the gateway sends again
        except Exception as exc:  # a failure of ours: keep what was sent, say so
            log.exception("a %s could not be stored; kept in the upload log as rejected", what)
            text = f"the platform could not store this {what} ({type(exc).__name__}); it is kept in the upload log"
            error = ServiceError(issues=[Issue("fatal", "exception", text, None)])
            with self.rt.sessions.begin() as session:
                upload = new_upload(session, self.rt.keys, sender, body, adapter=adapter, redacted=redacted)
                self.finish(session, sender, upload, "rejected", error.issues, rejected=rejected)
                return refused(upload, error)

    # -- admitting ----------------------------------------------------------------------------------
    def admit_patient(
        self, session: Session, sender: Principal, pkey: str | None, *, where: str, what: str
    ) -> Admitted:
        """The enrolled, active patient ``pkey`` when the gateway is enrolled for it; else Unprocessable."""
        patient = patients.by_key(session, pkey) if pkey else None
        if patient is None or not patient.active:
            raise Unprocessable(issues=[Issue("error", "business-rule", not_enrolled(what), where)])
        if not care.gateway_may_send(session, sender.id, patient.patient_key):
            text = "the patient is not enrolled on this gateway (homediag gateways assign); " + _KEPT.format(what=what)
            raise Unprocessable(issues=[Issue("error", "forbidden", text, where)])
        return Admitted(patient.id, patient.patient_key, patient.enrolled_at)

    def admit_device(
        self,
        session: Session,
        sender: Principal,
        names: list[str],
        *,
        described: str,
        where: str,
        what: str,
        patient_key: str | None = None,
    ) -> None:
        """Unprocessable unless the gateway may upload from a device known by any of ``names`` and, when
        the device is enrolled for a patient, ``patient_key`` is that patient."""
        if not care.gateway_may_use(session, sender.id, names):
            text = (
                f"{described} is not allowed on this gateway (homediag gateways allow-device, by serial, address"
                " or identifier value); " + _KEPT.format(what=what)
            )
            raise Unprocessable(issues=[Issue("error", "forbidden", text, where)])
        if patient_key is not None and care.bound_elsewhere(session, sender.id, names, patient_key):
            text = f"{described} is enrolled for another patient on this gateway; " + _KEPT.format(what=what)
            raise Unprocessable(issues=[Issue("error", "forbidden", text, where)])

    # -- time ---------------------------------------------------------------------------------------
    def too_far_ahead(self, when: datetime, where: str, label: str = "") -> Issue | None:
        """An error when ``when`` is more than the tolerance ahead of the platform's clock."""
        minutes = self.rt.settings.future_tolerance_minutes
        if when <= datetime.now(UTC) + timedelta(minutes=minutes):
            return None
        return Issue(
            "error",
            "business-rule",
            f"{label}dated {when.isoformat()}, more than {minutes} minutes ahead of the platform's clock (check the"
            " device clock, and the gateway's clock when the device sent no time or the gateway set it)",
            where,
        )

    def implausibly_early(
        self, when: datetime, enrolled_at: datetime | None, where: str, label: str = ""
    ) -> Issue | None:
        """A warning when ``when`` is before 2000 or long before the patient's enrolment (a device clock
        never set, a battery change): such a reading is held for review, never stored as a measurement."""
        floor = EARLIEST_READING
        if enrolled_at is not None:
            before = timedelta(days=self.rt.settings.earliest_days_before_enrolment)
            floor = max(floor, enrolled_at.replace(tzinfo=enrolled_at.tzinfo or UTC) - before)
        if when >= floor:
            return None
        return Issue(
            "warning",
            "business-rule",
            f"{label}dated {when.isoformat()}, before {floor.date().isoformat()} (2000, or"
            f" {self.rt.settings.earliest_days_before_enrolment} days before the patient's enrolment): the device"
            " clock is probably not set; held for review, not stored",
            where,
        )

    # -- storing ------------------------------------------------------------------------------------
    def store(
        self, session: Session, rows: list[dict[str, Any]], devices_seen: Iterable[dict[str, Any]] = ()
    ) -> list[bool]:
        """Upsert the devices and insert the rows (one statement); per row, whether it was stored now
        (False: a row with its dedup identifier was stored already, or came earlier in ``rows``)."""
        now = utcnow()
        for values in devices_seen:
            devices.upsert(
                session,
                {"identifier": None, "kind": None, "resource": None, **values, "first_seen": now, "last_seen": now},
            )
        first: dict[str, dict[str, Any]] = {}
        for row in rows:
            row["received_at"] = now
            first.setdefault(row["dedup"], row)
        created = observations.insert_new(session, list(first.values()))
        return [row["id"] in created and first[row["dedup"]] is row for row in rows]

    # -- the end of a unit --------------------------------------------------------------------------
    def finish(
        self,
        session: Session,
        sender: Principal,
        upload: m.Upload,
        outcome: str,
        issues: list[Issue],
        *,
        created: int = 0,
        duplicates: int = 0,
        rejected: int = 0,
        detail: str | None = None,
        patient_keys: Iterable[str] = (),
    ) -> None:
        """Record the outcome on the upload and audit it: one entry per patient (or one for the upload)."""
        upload.outcome, upload.created, upload.duplicates, upload.rejected = outcome, created, duplicates, rejected
        upload.issues = operation_outcome(issues) if issues else None
        text = (detail if detail is not None else issues[0].diagnostics if issues else outcome)[:500]
        keys: list[str | None] = [*sorted(set(patient_keys))] or [upload.patient_key]
        entry = f"upload/{upload.id}"
        audit.append(
            session,
            self.rt.keys,
            [
                audit.Entry(sender.id, sender.role, "ingest", outcome, patient_key=k, entity=entry, detail=text)
                for k in keys
            ],
        )


def observation_row(
    resource: dict[str, Any],
    *,
    primary_code: str,
    patient_key: str,
    device_id: str | None,
    effective: tuple[datetime, datetime],
    value: float | None,
    unit: str | None,
    dedup: str,
    adapter: str,
    upload_id: str | None,
    received_at: datetime | None = None,
    gateway_received_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``observation`` row for a stored Observation: the resource and the columns searches use.
    Three times are kept: the device's (in the resource), the gateway's and the platform's (``received_at``)."""
    codings = [c for c in (resource.get("code") or {}).get("coding") or [] if isinstance(c, dict)]
    return {
        "id": resource["id"],
        "patient_key": patient_key,
        "code": primary_code[:64],
        "category": " ".join(
            str(c["coding"][0].get("code"))
            for c in resource.get("category") or []
            if isinstance(c, dict) and c.get("coding")
        )[:200],
        "codes": " ".join(f"{c.get('system')}|{c.get('code')}" for c in codings),
        "effective_start": to_store(effective[0]),
        "effective_end": to_store(effective[1]),
        "device_id": device_id,
        "value": value,
        "unit": unit[:32] if unit else None,
        "status": str(resource.get("status")),
        "dedup": dedup,
        "resource": resource,
        "received_at": received_at,
        "adapter": adapter,
        "upload_id": upload_id,
        "gateway_received_at": to_store(gateway_received_at) if gateway_received_at is not None else None,
    }
