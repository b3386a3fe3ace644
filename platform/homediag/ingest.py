"""The ingest service: envelope in, Observations stored, every envelope kept with its outcome.

Per envelope, in one transaction: keep the envelope (sealed, and redacted for display), pick the
adapter, decode, build, check the profile rules, pseudonymise, insert idempotently on the dedup
identifier, audit. A refused envelope is still kept, with the reason. See docs/architecture.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from homediag.adapters.devices import DecodeError, UnknownAdapter
from homediag.adapters.devices import get as get_adapter
from homediag.fhir_profiles import (
    BuildContext,
    Built,
    Issue,
    build,
    check_rules,
    fhirjson,
    has_errors,
    operation_outcome,
)
from homediag.fhir_profiles import terminology as t

from . import audit, care
from .clock import to_store, utcnow
from .envelope import Envelope, redact
from .identity import CPR_SYSTEM, InvalidCpr, check_cpr, patient_key
from .keys import KeyRing
from .runtime import Runtime
from .store import models as m
from .users import Principal


@dataclass
class ObservationResult:
    id: str
    code: str
    outcome: str  # created | duplicate


@dataclass
class EnvelopeResult:
    index: int
    upload: str
    outcome: str  # created | duplicate | rejected | held | discarded
    observations: list[ObservationResult] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "upload": self.upload,
            "outcome": self.outcome,
            "observations": [{"id": o.id, "code": o.code, "outcome": o.outcome} for o in self.observations],
            "issues": operation_outcome(self.issues),
        }


log = logging.getLogger(__name__)


class Rejected(Exception):
    def __init__(self, *issues: Issue) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(i.diagnostics for i in issues))


def device_id(device: Any) -> str:
    ident = "|".join(str(getattr(device, k) or "") for k in ("manufacturer", "model", "serial", "address"))
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


def seal_upload(keys: KeyRing, raw: bytes, upload_id: str) -> tuple[str, bytes, bytes]:
    """Encrypt what a gateway sent under the vault key (it holds a CPR), bound to its upload id."""
    nonce = os.urandom(12)
    return keys.vault.kid, nonce, AESGCM(keys.vault.secret).encrypt(nonce, raw, upload_id.encode())


def open_upload(rt: Runtime, upload: m.Upload) -> bytes:
    """The envelope exactly as the gateway sent it (for an administrator investigating an upload)."""
    key = rt.keys.vault_key(upload.kid)
    return AESGCM(key.secret).decrypt(upload.nonce, upload.sealed, upload.id.encode())


def _envelope_issues(exc: ValidationError) -> list[Issue]:
    issues = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        where = f"envelope.{path}" if path else "envelope"
        # pydantic may echo the input; for patient.value that is a CPR, so say only what is wrong
        issues.append(Issue("error", "structure", f"{where}: {err['msg']}", where))
    return issues


def observation_row(
    b: Built,
    *,
    patient_key: str,
    device_id: str,
    adapter: str,
    upload_id: str | None,
    received_at: datetime,
    gateway_received_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``observation`` row for a built Observation: the resource and the columns searches use.
    Three times are kept: the device's (in the resource), the gateway's and the platform's (``received_at``)."""
    resource: dict[str, Any] = b.resource
    return {
        "id": resource["id"],
        "patient_key": patient_key,
        "code": t.measurement(b.measurement).primary_code,
        "category": " ".join(c["coding"][0]["code"] for c in resource["category"]),
        "codes": " ".join(f"{c['system']}|{c['code']}" for c in resource["code"]["coding"]),
        "effective_start": to_store(b.effective),
        "effective_end": to_store(b.effective),
        "device_id": device_id,
        "value": float(b.value) if b.value is not None else None,
        "unit": b.unit,
        "status": resource["status"],
        "dedup": b.dedup,
        "resource": resource,
        "received_at": received_at,
        "adapter": adapter,
        "upload_id": upload_id,
        "gateway_received_at": to_store(gateway_received_at) if gateway_received_at is not None else None,
    }


@cache
def _statements(dialect: str) -> tuple[Any, Any]:
    """The two writes of an ingest, built once per dialect so that SQLAlchemy compiles them once
    (a ``.values(rows)`` statement is new every time and misses the compiled cache)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    observations = insert(m.Observation).on_conflict_do_nothing(index_elements=["dedup"]).returning(m.Observation.id)
    device = insert(m.Device)
    return observations, device.on_conflict_do_update(
        index_elements=["id"], set_={"last_seen": device.excluded.last_seen}
    )


class IngestService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._insert_observations, self._upsert_device_stmt = _statements(rt.engine.dialect.name)

    def ingest_unreadable(self, sender: Principal, body: bytes, problem: str) -> EnvelopeResult:
        """A body that is not JSON at all: keep it, refuse it."""
        issue = Issue("error", "structure", problem, "body")
        with self.rt.sessions.begin() as session:
            upload = self._new_upload(session, sender, body, None)
            return self._finish_rejected(session, sender, upload, 0, [issue])

    def ingest(self, sender: Principal, raw_envelopes: list[Any]) -> list[EnvelopeResult]:
        return [self.ingest_one(sender, raw, index) for index, raw in enumerate(raw_envelopes)]

    def ingest_one(self, sender: Principal, raw: Any, index: int = 0, *, body: bytes | None = None) -> EnvelopeResult:
        """Ingest one parsed envelope. ``body`` is the request body when it held just this envelope:
        it is kept byte for byte; an envelope from a list is kept as its JSON."""
        body = body if body is not None else fhirjson.dumps(raw).encode()
        try:
            with self.rt.sessions.begin() as session:
                upload = self._new_upload(session, sender, body, raw)
                try:
                    return self._process(session, sender, upload, raw, index)
                except Rejected as rejected:
                    return self._finish_rejected(session, sender, upload, index, rejected.issues)
        except Exception as exc:  # the reading failed for a reason of ours: keep the envelope, say so
            log.exception("envelope %d could not be stored; kept in the upload log as rejected", index)
            with self.rt.sessions.begin() as session:
                upload = self._new_upload(session, sender, body, raw)
                issue = Issue(
                    "fatal",
                    "exception",
                    f"the platform could not store this reading ({type(exc).__name__}); it is kept in the upload log",
                    None,
                )
                return self._finish_rejected(session, sender, upload, index, [issue])

    def _new_upload(self, session: Session, sender: Principal, body: bytes, raw: Any) -> m.Upload:
        upload_id = str(uuid.uuid4())
        kid, nonce, sealed = seal_upload(self.rt.keys, body, upload_id)
        upload = m.Upload(
            id=upload_id,
            received_at=utcnow(),
            sender=sender.id,
            adapter=str(raw.get("adapter"))[:100] if isinstance(raw, dict) and raw.get("adapter") else None,
            kid=kid,
            nonce=nonce,
            sealed=sealed,
            redacted=redact(raw) if raw is not None else None,
            outcome="pending",
            created=0,
            duplicates=0,
            rejected=0,
        )
        session.add(upload)
        return upload

    def _finish_rejected(
        self, session: Session, sender: Principal, upload: m.Upload, index: int, issues: list[Issue]
    ) -> EnvelopeResult:
        upload.outcome, upload.rejected = "rejected", 1
        upload.issues = operation_outcome(issues)
        audit.append(
            session,
            self.rt.keys,
            [
                audit.Entry(
                    sender.id,
                    sender.role,
                    "ingest",
                    "rejected",
                    patient_key=upload.patient_key,
                    entity=f"upload/{upload.id}",
                    detail=issues[0].diagnostics[:500],
                )
            ],
        )
        return EnvelopeResult(index, upload.id, "rejected", issues=issues)

    def _process(self, session: Session, sender: Principal, upload: m.Upload, raw: Any, index: int) -> EnvelopeResult:
        if not isinstance(raw, dict):
            raise Rejected(
                Issue("error", "structure", f"an envelope is a JSON object, got {type(raw).__name__}", "envelope")
            )
        try:
            env = Envelope.model_validate(raw)
        except ValidationError as exc:
            raise Rejected(*_envelope_issues(exc)) from None
        dev_id = device_id(env.device)
        upload.device_id = dev_id
        if env.patient.system != CPR_SYSTEM:
            raise Rejected(
                Issue(
                    "error",
                    "code-invalid",
                    f"patient.system must be the CPR system {CPR_SYSTEM}",
                    "envelope.patient.system",
                )
            )
        try:
            cpr = check_cpr(env.patient.value)
        except InvalidCpr as exc:
            raise Rejected(Issue("error", "value", f"patient.value: {exc}", "envelope.patient.value")) from None
        pkey = patient_key(cpr.cpr, self.rt.keys.pseudonym)
        upload.patient_key = pkey
        patient = session.execute(select(m.Patient).where(m.Patient.patient_key == pkey)).scalar_one_or_none()
        if patient is None or not patient.active:
            raise Rejected(
                Issue(
                    "error",
                    "business-rule",
                    "the patient is not enrolled in the pilot; the reading is kept in the upload log but not stored",
                    "envelope.patient",
                )
            )
        if not care.gateway_may_send(session, sender.id, pkey):
            raise Rejected(
                Issue(
                    "error",
                    "forbidden",
                    "the patient is not enrolled on this gateway (homediag gateways assign); the reading is kept in the upload log but not stored",
                    "envelope.patient",
                )
            )
        if not care.gateway_may_use(session, sender.id, [env.device.serial or "", env.device.address or ""]):
            raise Rejected(
                Issue(
                    "error",
                    "forbidden",
                    f"the device (serial {env.device.serial or '-'}, address {env.device.address or '-'}) is not allowed on this gateway (homediag gateways allow-device); the reading is kept in the upload log but not stored",
                    "envelope.device",
                )
            )
        try:
            adapter = get_adapter(env.adapter)
        except UnknownAdapter as exc:
            raise Rejected(Issue("error", "not-supported", str(exc), "envelope.adapter")) from None
        try:
            readings = adapter.decode(env.payload_json() if adapter.input_kind == "json" else env.payload_bytes())
        except DecodeError as exc:
            # the expression names the envelope field that carried the payload; the diagnostics name
            # the field inside the payload and its byte offset
            carrier = exc.field if exc.field in ("payload_hex", "payload_base64", "data") else env.payload_field
            raise Rejected(Issue("error", "structure", f"{adapter.id}: {exc}", f"envelope.{carrier}")) from None

        received = env.received_at
        ctx = BuildContext(
            patient_id=patient.id,
            device_id=dev_id,
            gateway_received_at=received,
            local_zone=self.rt.local_zone,
            npu_system=self.rt.settings.npu_system,
        )
        issues: list[Issue] = []
        for reading in readings:
            if reading.disposition_text:
                issues.append(
                    Issue(
                        "information",
                        "informational",
                        f"{reading.disposition_text}; kept in the upload log",
                        "envelope.payload",
                    )
                )
        if not readings:
            issues.append(
                Issue(
                    "information",
                    "informational",
                    f"{adapter.id}: the payload holds no reading the platform stores (e.g. a goal, or only measurement types it does not know); kept in the upload log",
                    "envelope.payload",
                )
            )
        kept = [r for r in readings if r.disposition == "store"]
        if not kept:
            outcome = "held" if any(r.disposition == "hold" for r in readings) else "discarded"
            upload.outcome, upload.issues = outcome, operation_outcome(issues)
            audit.append(
                session,
                self.rt.keys,
                [
                    audit.Entry(
                        sender.id,
                        sender.role,
                        "ingest",
                        outcome,
                        patient_key=pkey,
                        entity=f"upload/{upload.id}",
                        detail=issues[0].diagnostics[:500],
                    )
                ],
            )
            return EnvelopeResult(index, upload.id, outcome, [], issues)
        built: list[Built] = [b for reading in kept for b in build(reading, ctx)]
        for b in built:
            for issue in check_rules(b.resource):
                issues.append(
                    Issue(issue.severity, issue.code, f"{b.measurement}: {issue.diagnostics}", issue.expression)
                )
        latest = datetime.now(UTC) + timedelta(minutes=self.rt.settings.future_tolerance_minutes)
        for b in built:
            if b.effective > latest:
                issues.append(
                    Issue(
                        "error",
                        "business-rule",
                        f"{b.measurement}: dated {b.effective.isoformat()}, more than {self.rt.settings.future_tolerance_minutes} minutes ahead of the platform's clock (check the device clock, or the gateway's clock when the device sent no time)",
                        "Observation.effectiveDateTime",
                    )
                )
        if has_errors(issues):
            raise Rejected(*issues)

        now = utcnow()
        self._upsert_device(session, dev_id, env, now)
        rows = [
            observation_row(
                b,
                patient_key=pkey,
                device_id=dev_id,
                adapter=adapter.id,
                upload_id=upload.id,
                received_at=now,
                gateway_received_at=received,
            )
            for b in built
        ]
        created_ids = set(session.execute(self._insert_observations, rows).scalars())
        results = [
            ObservationResult(str(r["id"]), str(r["code"]), "created" if r["id"] in created_ids else "duplicate")
            for r in rows
        ]
        outcome = "created" if created_ids else "duplicate"
        upload.outcome = outcome
        upload.created, upload.duplicates = len(created_ids), len(rows) - len(created_ids)
        upload.issues = operation_outcome(issues) if issues else None
        audit.append(
            session,
            self.rt.keys,
            [
                audit.Entry(
                    sender.id,
                    sender.role,
                    "ingest",
                    outcome,
                    patient_key=pkey,
                    entity=f"upload/{upload.id}",
                    detail=f"{len(created_ids)} created, {len(rows) - len(created_ids)} duplicate",
                )
            ],
        )
        return EnvelopeResult(index, upload.id, outcome, results, issues)

    def _upsert_device(self, session: Session, dev_id: str, env: Envelope, now: datetime) -> None:
        values = {
            "id": dev_id,
            "manufacturer": env.device.manufacturer,
            "model": env.device.model,
            "serial": env.device.serial,
            "address": env.device.address,
            "first_seen": now,
            "last_seen": now,
        }
        session.execute(self._upsert_device_stmt, values)
