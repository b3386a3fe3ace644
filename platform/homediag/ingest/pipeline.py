"""The one write path behind both fronts (``/ingest`` envelopes and PHD gateway FHIR).

A front turns what it received into patients, devices and Observation rows; everything else happens
here, the same for both: the unit of work (``Batch``: one transaction per ``/ingest`` request, or per group of
single envelopes sent together (``grouped``), each envelope all-or-nothing; ``unit``: one transaction per PHD
request) with the upload log kept whatever
happens, admitting a patient and a device for the sending gateway,
the future-date check, building and storing the rows (one insert, idempotent on ``dedup``; devices
upserted), finishing the upload (outcome, counters, issues) and the audit entries.

A step refuses by raising a ``homediag.errors.ServiceError`` carrying its issues: ``unit`` keeps the
upload as ``rejected`` with them and lets the front word the answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from homediag import audit, care, served
from homediag.access import ingested as access_ingested
from homediag.access.ingested import keep_ingested
from homediag.bodies import escape_text, readable
from homediag.clock import utcnow
from homediag.errors import ServiceError, Unprocessable
from homediag.fhir_profiles import Issue, operation_outcome
from homediag.monitoring.ingested import Histories
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.store.repositories import devices, kept, observations, patients, uploads
from homediag.store.repositories.observations import observation_row as observation_row  # the fronts' row
from homediag.users import Principal

from . import sqlite_write
from .admission import Admission
from .uploadlog import new_upload, seal_upload

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
            error = _fatal(what, exc)
            with self.rt.sessions.begin() as session:
                upload = new_upload(session, self.rt.keys, sender, body, adapter=adapter, redacted=redacted)
                self.finish(session, sender, upload, "rejected", error.issues, rejected=rejected)
                return refused(upload, error)

    def batch(self, sender: Principal, work: Callable[[Batch], None]) -> list[Any]:
        """Run ``work`` (which adds envelopes) in one ``Batch``, one transaction; the envelopes' results."""
        (results,) = self.batch_of([(sender, work)])
        if isinstance(results, BaseException):
            raise results
        return results

    def batch_of(self, requests: list[tuple[Principal, Callable[[Batch], None]]]) -> list[list[Any] | Exception]:
        """Run each request's ``work`` (which adds its envelopes, sent by its sender) in one ``Batch``, one
        transaction; per request its envelopes' results, or the exception its ``work`` raised outside an envelope
        (its envelopes, if any, left out). The works run a second time, in a new transaction, if admission changed
        after the answers they used were remembered (``ingest.admission``): nothing of the first run is written."""
        for remembered in (True, False):  # remembered admission answers, unless they went stale under the request
            with self.rt.sessions() as session:  # not sessions.begin(): a batch may roll back and go on
                batch = Batch(self, session, requests[0][0], remembered=remembered)
                try:
                    spans: list[tuple[int, int] | Exception] = []
                    for sender, work in requests:
                        start, batch.sender = len(batch.items), sender
                        try:
                            work(batch)
                        except Exception as exc:  # noqa: BLE001 - this request's failure, not its neighbours'
                            batch.drop_from(start)
                            spans.append(exc)
                        else:
                            spans.append((start, len(batch.items)))
                    results = batch.write() if batch.items else []
                    if batch.items and not batch.admission.current(batch.admission_version):
                        session.rollback()  # admission changed since it was remembered: again, reading it afresh
                        continue
                    session.commit()
                    batch.committed()
                    return [span if isinstance(span, Exception) else results[span[0] : span[1]] for span in spans]
                finally:
                    batch.release()
        raise AssertionError("a batch that read its own admission answers is always current")

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
        devices_seen = list(devices_seen)
        devices.one_writer_per_identified_device(session, devices_seen)
        for values in devices_seen:
            devices.upsert(
                session,
                {"identifier": None, "kind": None, "resource": None, **values, "first_seen": now, "last_seen": now},
            )
        first: dict[str, dict[str, Any]] = {}
        for row in rows:
            row["received_at"] = now
            first.setdefault(row["dedup"], row)
        created = _insert(session, list(first.values()))
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
        audit.append(session, self.rt.keys, _entries(sender, upload, outcome, issues, detail, patient_keys))


def _insert(
    session: Session,
    rows: list[dict[str, Any]],
    histories: Histories | None = None,
    prepared: access_ingested.Prepared | None = None,
) -> set[str]:
    """Insert the Observation rows not stored yet (``observations.insert_new``) and keep, in the same transaction,
    the values, triage and shape of those stored now (``keep_ingested``, triaged under ``histories``: a batch's
    remembered ones, ``Admission.settings_histories``; or ``prepared`` ahead): both fronts' one insert. The ids
    stored."""
    created = observations.insert_new(session, rows)
    with kept.deferred(session):  # the values, triages and shapes in one statement on PostgreSQL
        keep_ingested(session, [row for row in rows if row["id"] in created], histories, prepared)
    return created


def _fatal(what: str, exc: BaseException) -> ServiceError:
    text = f"the platform could not store this {what} ({type(exc).__name__}); it is kept in the upload log"
    return ServiceError(issues=[Issue("fatal", "exception", text, None)])


def _entries(
    sender: Principal,
    upload: Any,
    outcome: str,
    issues: list[Issue],
    detail: str | None,
    patient_keys: Iterable[str] = (),
) -> list[audit.Entry]:
    """The audit entries of a finished upload: one per patient (or one for the upload)."""
    text = (detail if detail is not None else issues[0].diagnostics if issues else outcome)[:500]
    keys: list[str | None] = [*sorted(set(patient_keys))] or [upload.patient_key]
    entity = f"upload/{upload.id}"
    return [
        audit.Entry(sender.id, sender.role, "ingest", outcome, patient_key=k, entity=entity, detail=text) for k in keys
    ]


@dataclass
class UploadRecord:
    """An upload of a ``Batch``: a row of ``upload`` kept in memory and written with the batch."""

    id: str
    received_at: datetime
    sender: str
    adapter: str | None
    kid: str
    nonce: bytes
    sealed: bytes
    redacted: Any
    outcome: str = "pending"
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    issues: Any = None
    patient_key: str | None = None
    device_id: str | None = None
    vendor: str | None = None  # the registered device's vendor, else the manufacturer the envelope states

    def row(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Stored:
    """What an envelope's work hands the batch: rows and devices to write, and how to finish once it knows
    which rows were new (``then`` gets one flag per row and returns the envelope's result)."""

    rows: list[dict[str, Any]]
    devices: list[dict[str, Any]]
    then: Callable[[list[bool]], Any]


@dataclass
class _Item:
    sender: Principal
    upload: UploadRecord
    refused: Callable[[Any, ServiceError], Any]
    what: str
    stored: Stored | None = None
    result: Any = None
    entries: list[audit.Entry] = field(default_factory=list)


class Batch:
    """The unit of work of one ``/ingest`` request (or of single envelopes sent together: ``ingest.grouped``): one
    transaction, each envelope all-or-nothing; ``sender`` is the gateway whose envelopes are being added.

    An envelope's work only reads (admission, with the answers cached for the request) and computes; it
    hands its rows to ``store`` and its outcome to ``finish``. ``write`` then writes everything at once:
    devices, Observations (their dedup keys claimed, then the new ones inserted), uploads, and the audit entries
    chained in memory and appended together, last, so the chain's head is held only until the commit. Should the
    bulk write fail, it is rolled back (nothing else was written yet) and each envelope is written under a
    savepoint of its own: a failing one is kept in the upload log as rejected, and never costs the others.
    """

    def __init__(self, pipeline: Pipeline, session: Session, sender: Principal, *, remembered: bool = True) -> None:
        self.pipeline, self.session, self.sender = pipeline, session, sender
        self.items: list[_Item] = []
        self._by_upload: dict[str, _Item] = {}
        self._patients: dict[tuple[str, str | None, str, str], Admitted | ServiceError] = {}
        self._devices_written: dict[str, tuple[Any, ...]] = {}
        self._registrations: dict[tuple[str, ...], tuple[bool, list[tuple[str | None, str | None]]]] = {}
        self.admission = Admission(session, remembered=remembered)
        self.admission_version: int | None = None  # the counter read as the uploads were written
        self._prepared: access_ingested.Prepared | None = None  # made before the write transaction (``_prepare``)

    # -- per envelope -------------------------------------------------------------------------------
    def add(
        self,
        body: bytes,
        *,
        adapter: str | None,
        redacted: Any,
        what: str,
        work: Callable[[Batch, UploadRecord], Any],
        refused: Callable[[Any, ServiceError], Any],
        plain: bool = False,
    ) -> None:
        """Keep ``body`` (sealed) as a new upload and run ``work`` for it; a ``ServiceError`` refuses it.
        ``plain``: ``redacted`` holds no NUL or lone surrogate (``bodies.may_hold_bad_text``): storable as it is."""
        keys = self.pipeline.rt.keys
        upload_id = str(uuid.uuid4())
        kid, nonce, sealed = seal_upload(keys, body, upload_id)
        # the readable copy made storable (a NUL or lone surrogate as its visible escape); the sealed body as sent
        stored_adapter = escape_text(adapter) if adapter is not None else None
        upload = UploadRecord(
            upload_id,
            utcnow(),
            self.sender.id,
            stored_adapter,
            kid,
            nonce,
            sealed,
            redacted if plain else readable(redacted),
        )
        item = _Item(self.sender, upload, refused, what)
        self.items.append(item)
        self._by_upload[upload_id] = item
        try:
            out = work(self, upload)
        except ServiceError as exc:
            self.finish(upload, "rejected", exc.issues, rejected=1)
            item.result = refused(upload, exc)
        except Exception as exc:  # a failure of ours: keep what was sent, say so
            log.exception("a %s could not be stored; kept in the upload log as rejected", what)
            self.session.rollback()  # only reads ran in it: the batch writes at the end
            self._reject(item, _fatal(what, exc))
        else:
            if isinstance(out, Stored):
                item.stored = out
            else:
                item.result = out

    def admit_patient(self, pkey: str | None, *, where: str, what: str) -> Admitted:
        """``Pipeline.admit_patient``, answered once per patient in a request, with one query: the patient and
        whether this gateway is enrolled for it."""
        key = (self.sender.id, pkey, where, what)
        if key not in self._patients:
            found = self.admission.patient(self.sender.id, pkey) if pkey else None
            if found is None or not found.active:
                self._patients[key] = Unprocessable(issues=[Issue("error", "business-rule", not_enrolled(what), where)])
            elif not found[3]:
                text = "the patient is not enrolled on this gateway (homediag gateways assign); " + _KEPT.format(
                    what=what
                )
                self._patients[key] = Unprocessable(issues=[Issue("error", "forbidden", text, where)])
            else:
                self._patients[key] = Admitted(found.id, pkey, found.enrolled_at)  # type: ignore[arg-type]
        answer = self._patients[key]
        if isinstance(answer, ServiceError):
            raise answer
        return answer

    def registrations(self, names: list[str]) -> tuple[bool, list[tuple[str | None, str | None]]]:
        """Whether this gateway may use a device known by any of ``names`` (its own registration or ``*``), and
        the device's registrations on it (vendor, patient key): one query per device in a request."""
        key = (self.sender.id, *names)
        if key not in self._registrations:
            rows = self.admission.registrations(self.sender.id, names)
            self._registrations[key] = (
                bool(rows),
                [(row.vendor, row.patient_key) for row in rows if row.serial != care.ANY_DEVICE],
            )
        return self._registrations[key]

    def registered_vendor(self, names: list[str]) -> str | None:
        """``care.registered_vendor`` from the request's ``registrations``."""
        vendors = {vendor for vendor, _ in self.registrations(names)[1] if vendor}
        return vendors.pop() if len(vendors) == 1 else None

    def admit_device(
        self, names: list[str], *, described: str, where: str, what: str, patient_key: str | None = None
    ) -> None:
        """``Pipeline.admit_device``, answered from the request's ``registrations``."""
        allowed, registered = self.registrations(names)
        if not allowed:
            text = (
                f"{described} is not allowed on this gateway (homediag gateways allow-device, by serial, address"
                " or identifier value); " + _KEPT.format(what=what)
            )
            raise Unprocessable(issues=[Issue("error", "forbidden", text, where)])
        bound = {key for _, key in registered if key}
        if patient_key is not None and bound and patient_key not in bound:
            text = f"{described} is enrolled for another patient on this gateway; " + _KEPT.format(what=what)
            raise Unprocessable(issues=[Issue("error", "forbidden", text, where)])

    def store(
        self, rows: list[dict[str, Any]], devices_seen: list[dict[str, Any]], then: Callable[[list[bool]], Any]
    ) -> Stored:
        """What ``work`` returns to have ``rows`` written; ``then`` finishes the envelope."""
        return Stored(rows, devices_seen, then)

    def finish(
        self,
        upload: UploadRecord,
        outcome: str,
        issues: list[Issue],
        *,
        created: int = 0,
        duplicates: int = 0,
        rejected: int = 0,
        detail: str | None = None,
    ) -> None:
        """Record the outcome on the upload and its audit entry (appended when the batch is written)."""
        upload.outcome, upload.created, upload.duplicates, upload.rejected = outcome, created, duplicates, rejected
        upload.issues = operation_outcome(issues) if issues else None
        item = self._by_upload[upload.id]
        item.entries = _entries(item.sender, upload, outcome, issues, detail)

    def release(self) -> None:
        """Let go of the envelopes once the batch is written or given up: an envelope's ``then`` closes over the
        batch, so without this every envelope's objects (rows, results, audit entries) would be a reference cycle
        outliving its request until a full collection frees it inside a later one (docs/performance.md)."""
        for item in self.items:
            item.stored = None
        self.items = []
        self._by_upload.clear()
        self._prepared = None

    def drop_from(self, start: int) -> None:
        """Leave out the envelopes added from ``start`` on (a request whose work failed outside an envelope)."""
        for item in self.items[start:]:
            del self._by_upload[item.upload.id]
        del self.items[start:]

    def _reject(self, item: _Item, error: ServiceError) -> None:
        item.stored = None
        item.upload.patient_key = item.upload.device_id = None
        self.finish(item.upload, "rejected", error.issues, rejected=1)
        item.result = item.refused(item.upload, error)

    # -- the end of the request ---------------------------------------------------------------------
    def write(self) -> list[Any]:
        """Write the batch (see the class); the envelopes' results, in order."""
        session, keys = self.session, self.pipeline.rt.keys
        self._prepared = self._prepare()
        sqlite_write.begin_write(session)  # SQLite: the write lock taken as soon as it is free
        # on SQLite the first write: it begins the transaction, so that the savepoints below nest in it
        audit.begin_write(session, keys)
        try:
            self._devices_written = self._write(self.items)
        except Exception:  # noqa: BLE001 - whatever the database or its driver refused, one envelope at a time
            log.warning("a list could not be written at once; writing it envelope by envelope", exc_info=True)
            session.rollback()  # only this write is lost: the envelopes' work only read
            sqlite_write.begin_write(session)
            audit.begin_write(session, keys)
            for item in self.items:
                try:
                    with session.begin_nested():
                        written = self._write([item])
                    self._devices_written.update(written)
                except Exception as exc:
                    log.exception("a %s could not be stored; kept in the upload log as rejected", item.what)
                    self._reject(item, _fatal(item.what, exc))
                    try:
                        with session.begin_nested():
                            self.admission_version = uploads.insert_many(session, [item.upload.row()])
                    except Exception:
                        item.upload.redacted = None  # the readable copy is what the database refused
                        with session.begin_nested():
                            self.admission_version = uploads.insert_many(session, [item.upload.row()])
        audit.append(session, keys, [e for item in self.items for e in item.entries], head_open=True)
        return [item.result for item in self.items]

    def _prepare(self) -> access_ingested.Prepared | None:
        """SQLite: what the write derives from the rows alone (their served text, shape, values and triage), made
        now, before the write transaction: SQLite has one writer at a time, so what is done in it waits for every
        other process's write, and theirs for it; what is done before runs beside them. PostgreSQL: nothing (its
        writers do not queue on one lock)."""
        if self.session.get_bind().dialect.name == "postgresql":
            return None
        rows = [row for item in self.items if item.stored is not None for row in item.stored.rows]
        if not rows:
            return None
        try:
            served.fill(rows)
            return access_ingested.prepare(rows, self.admission.settings_histories)
        except Exception:  # noqa: BLE001 - made again in the write, where a failing envelope costs no other
            return None

    def _write(self, items: list[_Item]) -> dict[str, tuple[Any, ...]]:
        session, now = self.session, utcnow()
        seen: dict[str, dict[str, Any]] = {}
        first: dict[str, dict[str, Any]] = {}
        for item in items:
            if item.stored is None:
                continue
            for values in item.stored.devices:
                seen[values["id"]] = {
                    "identifier": None,
                    "kind": None,
                    "resource": None,
                    **values,
                    "first_seen": now,
                    "last_seen": now,
                }
            for row in item.stored.rows:
                row["received_at"] = now
                first.setdefault(row["dedup"], row)
        # rows and devices in key order: concurrent requests lock what they share in the same order. A device
        # this process wrote lately, as it is now, is not written again (``devices.REFRESH_SECONDS``)
        fresh = devices.not_written_lately(self.pipeline.rt.engine, seen)
        devices.upsert_many(session, list(fresh.values()))
        created = _insert(session, [first[k] for k in sorted(first)], self.admission.settings_histories, self._prepared)
        for item in items:
            if item.stored is not None:
                rows = item.stored.rows
                item.result = item.stored.then([row["id"] in created and first[row["dedup"]] is row for row in rows])
        self.admission_version = uploads.insert_many(session, [item.upload.row() for item in items])
        return {k: devices.shown(v) for k, v in fresh.items()}

    def committed(self) -> None:
        """After the commit: remember the devices written (see ``_write``)."""
        devices.remember_written(self.pipeline.rt.engine, self._devices_written)
