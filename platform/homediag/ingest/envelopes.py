"""The ``/ingest`` front: envelope in, adapter, readings, built Observations; the rest is the pipeline.

One transaction per request (``pipeline.Batch``), each envelope all-or-nothing in it: keep the envelope
(sealed, and redacted for display), pick the adapter, decode, build, check the profile rules,
pseudonymise, admit the patient and the device for the gateway (reads only); then the batch inserts
idempotently on the dedup identifier and audits. A refused envelope is still kept, with the reason.
See docs/architecture.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from homediag import bodies
from homediag.adapters.devices import DecodeError, UnknownAdapter
from homediag.adapters.devices import get as get_adapter
from homediag.envelope import Envelope, redact
from homediag.errors import BadRequest, PayloadTooLarge, ServiceError, Unprocessable
from homediag.fhir_profiles import (
    BuildContext,
    Built,
    Issue,
    build,
    check_built,
    fhirjson,
    has_errors,
    operation_outcome,
)
from homediag.fhir_profiles import terminology as t
from homediag.identity import CPR_SYSTEM, InvalidCpr, check_cpr, patient_key, said
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.users import Principal

from . import pipeline
from .grouped import grouped
from .pipeline import Batch, Pipeline, UploadRecord

STATUS = {"created": 201, "duplicate": 200, "held": 202, "discarded": 200}  # else 422 (rejected)


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


@dataclass
class IngestAnswer:
    """What ``POST /ingest`` answers: a status and a JSON body."""

    status: int
    body: dict[str, Any]


def device_id(device: Any) -> str:
    ident = "|".join(str(getattr(device, k) or "") for k in ("manufacturer", "model", "serial", "address"))
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


def observation_row(
    b: Built,
    *,
    patient_key: str,
    device_id: str,
    adapter: str,
    upload_id: str | None,
    received_at: datetime | None,
    gateway_received_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``observation`` row of a built Observation (see ``store.repositories.observations.observation_row``)."""
    return pipeline.observation_row(
        b.resource,
        primary_code=t.measurement(b.measurement).primary_code,
        patient_key=patient_key,
        device_id=device_id,
        effective=(b.effective, b.effective),
        value=float(b.value) if b.value is not None else None,
        unit=b.unit,
        dedup=b.dedup,
        adapter=adapter,
        upload_id=upload_id,
        received_at=received_at,
        gateway_received_at=gateway_received_at,
    )


def _envelope_issues(exc: ValidationError) -> list[Issue]:
    issues = []
    for err in exc.errors():
        path = ".".join(said(str(p)) for p in err["loc"])  # a member's name may itself be a CPR
        where = f"envelope.{path}" if path else "envelope"
        # pydantic may echo the input; for patient.value that is a CPR, so say only what is wrong
        issues.append(Issue("error", "structure", f"{where}: {err['msg']}", where))
    return issues


def _refused(index: int) -> Any:
    return lambda upload, exc: EnvelopeResult(index, upload.id, "rejected", issues=exc.issues)


class IngestService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.pipeline = Pipeline(rt)

    def post(self, sender: Principal, body: bytes) -> IngestAnswer:
        """``POST /ingest``: one envelope (its result, status by outcome), a list (200, a result each), or a
        body that is not JSON (400; kept all the same)."""
        try:
            # NULs and lone surrogates are looked for per envelope (``_process``): one bad envelope of a list
            # never costs the others
            parsed: Any = bodies.loads(body, check_text=False)
        except bodies.BodyError as exc:
            result = self.ingest_unreadable(sender, body, BadRequest(f"{exc}; it is kept in the upload log", exc.where))
            return IngestAnswer(400, result.as_json())
        # a body with no escape that could hold a NUL or a lone surrogate spares each envelope the walk
        plain = not bodies.may_hold_bad_text(body)
        if isinstance(parsed, list):
            limit = self.rt.settings.max_envelopes_per_list
            if len(parsed) > limit:
                text = (
                    f"the list holds {len(parsed)} envelopes, more than the {limit} a request may carry"
                    " (HOMEDIAG_MAX_ENVELOPES_PER_LIST); send them in smaller lists. Nothing of it was stored;"
                    " it is kept in the upload log"
                )
                result = self.ingest_unreadable(sender, body, PayloadTooLarge(text, "body"))
                return IngestAnswer(413, result.as_json())
            return IngestAnswer(200, {"results": [r.as_json() for r in self.ingest(sender, parsed, plain=plain)]})
        result = self.ingest_one(sender, parsed, body=body, plain=plain)
        return IngestAnswer(STATUS.get(result.outcome, 422), result.as_json())

    def ingest_unreadable(self, sender: Principal, body: bytes, problem: ServiceError) -> EnvelopeResult:
        """A body that cannot be taken as a whole (not JSON, too deep, too many envelopes): keep it, refuse it."""

        def refuse(session: Session, upload: m.Upload) -> EnvelopeResult:
            raise problem

        return self.pipeline.unit(
            sender, body, adapter=None, redacted=None, what="reading", work=refuse, refused=_refused(0)
        )

    def ingest(self, sender: Principal, raw_envelopes: list[Any], *, plain: bool = False) -> list[EnvelopeResult]:
        """A list of parsed envelopes, in one transaction (``pipeline.Batch``): each envelope all-or-nothing.
        ``plain``: they were parsed from JSON text without a NUL or lone surrogate (``bodies.may_hold_bad_text``)."""

        def add_all(batch: Batch) -> None:
            for index, raw in enumerate(raw_envelopes):
                self._add(batch, raw, index, plain=plain)

        # written with what other requests of this process send at the same time (group commit): one list at a time
        return grouped(self.pipeline, sender, add_all, len(raw_envelopes))  # type: ignore[no-any-return]

    def ingest_one(
        self, sender: Principal, raw: Any, index: int = 0, *, body: bytes | None = None, plain: bool = False
    ) -> EnvelopeResult:
        """Ingest one parsed envelope. ``body`` is the request body when it held just this envelope:
        it is kept byte for byte; an envelope from a list is kept as its JSON. ``plain``: as for ``ingest``."""
        # written with the single envelopes other requests of this process send at the same time (group commit)
        (result,) = grouped(self.pipeline, sender, lambda batch: self._add(batch, raw, index, body=body, plain=plain))
        return result  # type: ignore[no-any-return]

    def _add(self, batch: Batch, raw: Any, index: int, *, body: bytes | None = None, plain: bool = False) -> None:
        # a lone surrogate has no UTF-8 form: kept as its JSON escape (\udXXX)
        body = body if body is not None else fhirjson.dumps(raw).encode("utf-8", "backslashreplace")
        adapter = str(raw.get("adapter"))[:100] if isinstance(raw, dict) and raw.get("adapter") else None
        batch.add(
            body,
            adapter=adapter,
            redacted=redact(raw),
            what="reading",
            work=lambda batch, upload: self._process(batch, batch.sender, upload, raw, index, plain),
            refused=_refused(index),
            plain=plain,
        )

    def _process(
        self, batch: Batch, sender: Principal, upload: UploadRecord, raw: Any, index: int, plain: bool = False
    ) -> Any:
        problem = None if plain else bodies.text_problem(raw, "envelope")
        if problem is not None:
            text, where = problem
            raise BadRequest(f"{text}; the envelope is kept in the upload log", where, code="structure")
        if not isinstance(raw, dict):
            raise Unprocessable(
                issues=[
                    Issue("error", "structure", f"an envelope is a JSON object, got {type(raw).__name__}", "envelope")
                ]
            )
        try:
            env = Envelope.model_validate(raw)
        except ValidationError as exc:
            raise Unprocessable(issues=_envelope_issues(exc)) from None
        dev_id = device_id(env.device)
        upload.device_id = dev_id
        serial, address = env.device.serial, env.device.address
        # whose upload log shows it: the vendor its registration names, not the manufacturer it states
        stated = (env.device.manufacturer or "")[:200] or None
        upload.vendor = batch.registered_vendor([serial or "", address or ""]) or stated
        if env.patient.system != CPR_SYSTEM:
            text = f"patient.system must be the CPR system {CPR_SYSTEM}"
            raise Unprocessable(issues=[Issue("error", "code-invalid", text, "envelope.patient.system")])
        try:
            cpr = check_cpr(env.patient.value)
        except InvalidCpr as exc:
            text = f"patient.value: {exc}"
            raise Unprocessable(issues=[Issue("error", "value", text, "envelope.patient.value")]) from None
        pkey = patient_key(cpr.cpr, self.rt.keys.pseudonym)
        upload.patient_key = pkey
        patient = batch.admit_patient(pkey, where="envelope.patient", what="reading")
        batch.admit_device(
            [serial or "", address or ""],
            described=f"the device (serial {serial or '-'}, address {address or '-'})",
            where="envelope.device",
            what="reading",
            patient_key=pkey,
        )
        try:
            adapter = get_adapter(env.adapter)
        except UnknownAdapter as exc:
            raise Unprocessable(issues=[Issue("error", "not-supported", str(exc), "envelope.adapter")]) from None
        try:
            readings = adapter.decode(env.payload_json() if adapter.input_kind == "json" else env.payload_bytes())
        except DecodeError as exc:
            # the expression names the envelope field that carried the payload; the diagnostics name
            # the field inside the payload and its byte offset
            carrier = exc.field if exc.field in ("payload_hex", "payload_base64", "data") else env.payload_field
            issue = Issue("error", "structure", f"{adapter.id}: {exc}", f"envelope.{carrier}")
            raise Unprocessable(issues=[issue]) from None

        ctx = BuildContext(
            patient_id=patient.id,
            device_id=dev_id,
            gateway_received_at=env.received_at,
            local_zone=self.rt.local_zone,
            npu_system=self.rt.settings.npu_system,
        )
        issues = [
            Issue("information", "informational", f"{r.disposition_text}; kept in the upload log", "envelope.payload")
            for r in readings
            if r.disposition_text
        ]
        if not readings:
            issues.append(
                Issue(
                    "information",
                    "informational",
                    f"{adapter.id}: the payload holds no reading the platform stores (e.g. a goal, or only"
                    " measurement types it does not know); kept in the upload log",
                    "envelope.payload",
                )
            )
        kept = [r for r in readings if r.disposition == "store"]
        if not kept:
            outcome = "held" if any(r.disposition == "hold" for r in readings) else "discarded"
            batch.finish(upload, outcome, issues)
            return EnvelopeResult(index, upload.id, outcome, [], issues)
        built: list[Built] = [b for reading in kept for b in build(reading, ctx)]
        for b in built:  # the profile's rules; the invariants hold by construction (``check_built``)
            for issue in check_built(b.resource):
                issues.append(
                    Issue(issue.severity, issue.code, f"{b.measurement}: {issue.diagnostics}", issue.expression)
                )
        for b in built:
            ahead = self.pipeline.too_far_ahead(b.effective, "Observation.effectiveDateTime", f"{b.measurement}: ")
            if ahead is not None:
                issues.append(ahead)
        if has_errors(issues):
            raise Unprocessable(issues=issues)
        early = [
            issue
            for b in built
            if (
                issue := self.pipeline.implausibly_early(
                    b.effective, patient.enrolled_at, "Observation.effectiveDateTime", f"{b.measurement}: "
                )
            )
        ]
        if early:
            issues.extend(early)
            batch.finish(upload, "held", issues)
            return EnvelopeResult(index, upload.id, "held", [], issues)

        rows = [
            observation_row(
                b,
                patient_key=pkey,
                device_id=dev_id,
                adapter=adapter.id,
                upload_id=upload.id,
                received_at=None,
                gateway_received_at=env.received_at,
            )
            for b in built
        ]
        device = {"id": dev_id, "manufacturer": env.device.manufacturer, "model": env.device.model}

        def stored(new: list[bool]) -> EnvelopeResult:  # once the batch knows which rows were new
            results = [
                ObservationResult(str(r["id"]), str(r["code"]), "created" if n else "duplicate")
                for r, n in zip(rows, new, strict=True)
            ]
            n_created = sum(new)
            outcome = "created" if n_created else "duplicate"
            batch.finish(
                upload,
                outcome,
                issues,
                created=n_created,
                duplicates=len(rows) - n_created,
                detail=f"{n_created} created, {len(rows) - n_created} duplicate",
            )
            return EnvelopeResult(index, upload.id, outcome, results, issues)

        return batch.store(rows, [{**device, "serial": serial, "address": address}], stored)
