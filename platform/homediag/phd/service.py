"""The PHD gateway front: ``POST /fhir`` (a transaction or batch Bundle) and ``POST /fhir/Observation``.

Per request, one unit of work of the write pipeline (``homediag.ingest.pipeline``): the body is kept
in the upload log (sealed, and redacted by ``phd.redaction``); then the entries are checked
(``entries``), the patients resolved (``patients``), Devices and Observations checked and identified
(``resources``, ``references``), and what passed stored by the pipeline, which also finishes the upload
and audits. A transaction is all or nothing: when any entry fails nothing of it is stored and the
answer is an OperationOutcome (422) naming the entries. In a batch each entry stands alone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from homediag import bodies, bundles, versions
from homediag.access import AccessService
from homediag.clock import utcnow
from homediag.errors import BadRequest, ServiceError
from homediag.fhir_profiles import Issue, operation_outcome
from homediag.ingest.pipeline import Pipeline
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.users import Principal

from .constants import ADAPTER, WHAT
from .context import Context
from .entries import Entry, GatewayResult, bundle_entries, check_request, observation_entry, prefixed
from .patients import observation_subject, patient_entry
from .redaction import redact_fhir
from .references import inherit_patient
from .resources import check_observation, device_entry, device_values, key_and_match, observation_entry_row


class PhdGatewayService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.pipeline = Pipeline(rt)

    def post_bundle(self, sender: Principal, body: bytes) -> GatewayResult:
        return self._unit(sender, body, lambda raw: (bundle_entries(raw), str(raw["type"])))

    def post_observation(self, sender: Principal, body: bytes, if_none_exist: str | None = None) -> GatewayResult:
        return self._unit(sender, body, lambda raw: ([observation_entry(raw, if_none_exist)], "single"))

    def _unit(self, sender: Principal, body: bytes, read: Any) -> GatewayResult:
        problem: ServiceError | None = None
        entries: list[Entry] = []
        mode = "single"
        try:
            raw: Any = bodies.loads(body)  # not JSON, too deep, a NUL or a lone surrogate: refused, kept
        except bodies.BodyError as exc:
            raw = None
            text = f"{exc}; it is kept in the upload log"
            problem = BadRequest(issues=[Issue("error", "structure", text, exc.where)])
        if problem is None:
            try:
                entries, mode = read(raw)
            except ServiceError as exc:
                problem = exc

        def work(session: Session, upload: m.Upload) -> GatewayResult:
            if problem is not None:
                raise problem
            return _Request(Context(self.rt, self.pipeline, session, sender, upload, raw, entries, mode)).execute()

        def refused(upload: m.Upload, exc: ServiceError) -> GatewayResult:
            return GatewayResult(upload.id, exc.status, operation_outcome(exc.issues))

        return self.pipeline.unit(
            sender,
            body,
            adapter=ADAPTER,
            redacted=redact_fhir(raw) if raw is not None else None,
            what=WHAT,
            work=work,
            refused=refused,
            rejected=max(len(entries), 1),
        )


class _Request:
    """One request: resolve, check and store its entries in the unit's transaction."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.entries = ctx.entries

    def execute(self) -> GatewayResult:
        ctx = self.ctx
        for e in self.entries:
            check_request(e, ctx.mode)
        for step, rtype in ((patient_entry, "Patient"), (device_entry, "Device"), (observation_subject, "Observation")):
            for e in self.entries:
                if e.rtype == rtype and not e.failed:
                    step(ctx, e)
        observations = [e for e in self.entries if e.rtype == "Observation"]
        for e in observations:
            if not e.failed:
                check_observation(ctx, e)
        for e in observations:
            if not e.failed and e.subject_device is not None:
                inherit_patient(ctx, e)
        for e in observations:
            if not e.failed and e.patient is not None:
                key_and_match(ctx, e)
        for e in observations:
            if not e.failed:
                observation_entry_row(ctx, e)
        failed = [e for e in self.entries if e.failed]
        if ctx.mode == "transaction" and failed:
            return self._refuse_transaction(failed)
        return self._store()

    def _finish(self, outcome: str, issues: list[Issue], **counts: Any) -> None:
        keys = {e.patient.key for e in self.entries if e.patient is not None}
        self.ctx.pipeline.finish(
            self.ctx.session, self.ctx.sender, self.ctx.upload, outcome, issues, patient_keys=keys, **counts
        )

    def _refuse_transaction(self, failed: list[Entry]) -> GatewayResult:
        issues = []
        for e in failed:
            where = f"Bundle.entry[{e.result.index}]" + (f" ({e.result.full_url})" if e.result.full_url else "")
            for i in e.result.issues:
                if i.severity in ("error", "fatal"):
                    p = prefixed(i, self.ctx.prefix(e))
                    issues.append(Issue(p.severity, p.code, f"{where}: {i.diagnostics}", p.expression))
        text = "a transaction is all or nothing: nothing of this Bundle was stored; it is kept in the upload log"
        issues.append(Issue("information", "informational", text, "Bundle"))
        self._finish("rejected", issues, rejected=len(failed))
        return GatewayResult(self.ctx.upload.id, 422, operation_outcome(issues))

    def _store(self) -> GatewayResult:
        ctx = self.ctx
        good = [e for e in self.entries if not e.failed]
        devices = {e.device_id: e for e in good if e.rtype == "Device"}
        stored = [e for e in good if e.row is not None]
        created = ctx.pipeline.store(
            ctx.session,
            [e.row for e in stored],
            [device_values(ctx, e) for e in devices.values()],  # type: ignore[misc]
        )
        new = {id(e) for e, c in zip(stored, created, strict=True) if c}
        n_created = n_duplicate = 0
        for e in good:
            if e.rtype != "Observation":
                continue
            if id(e) in new:
                e.result.status = 201
                n_created += 1
            else:
                e.result.status = 200
                e.existing = True
                n_duplicate += 1
        rejected = len(self.entries) - len(good)
        if ctx.mode == "single":
            outcome = "rejected" if rejected else "created" if n_created else "duplicate"
        else:
            outcome = ("partial" if good else "rejected") if rejected else "created" if n_created else "duplicate"
        ctx.upload.device_id = next(
            (e.device_id for e in self.entries if e.rtype == "Observation" and e.device_id), next(iter(devices), None)
        )
        issues = [prefixed(i, ctx.prefix(e)) for e in self.entries for i in e.result.issues]
        detail = f"{n_created} created, {n_duplicate} duplicate, {rejected} rejected; {len(devices)} devices"
        self._finish(outcome, issues, created=n_created, duplicates=n_duplicate, rejected=rejected, detail=detail)
        if ctx.mode == "single":
            return self._single_result(self.entries[0])
        responses = [(e.result.full_url, e.result.response(ctx.prefix(e))) for e in self.entries]
        make = bundles.transaction_response if ctx.mode == "transaction" else bundles.batch_response
        return GatewayResult(ctx.upload.id, 200, make(responses))

    def _single_result(self, e: Entry) -> GatewayResult:
        upload = self.ctx.upload.id
        if e.failed:
            return GatewayResult(
                upload, e.result.status if e.result.status >= 400 else 422, operation_outcome(e.result.issues)
            )
        if e.result.status == 201 and e.row is not None:
            stamped = versions.stamp(e.row["resource"], 1, e.row.get("received_at") or utcnow())
            return GatewayResult(upload, 201, stamped, location=e.result.location)
        # an Observation with this identifier is stored: a gateway writes, it does not read, so it gets
        # back the stored resource only when it sent that itself
        location = f"Observation/{e.obs_id}"
        stored = AccessService(self.ctx.rt).gateway_read_back(self.ctx.session, self.ctx.sender, str(e.obs_id))
        if stored is not None:
            return GatewayResult(upload, 200, stored, location=location)
        text = f"an Observation with this identifier is stored already ({location}); nothing was stored"
        note = Issue("information", "duplicate", text, "Observation.identifier")
        return GatewayResult(upload, 200, operation_outcome([note]), location=location)
