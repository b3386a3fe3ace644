"""The vendor face: ``POST /sandbox/{adapter}`` (try a payload, store nothing) and ``GET /uploads``
(the upload log of the vendor's own devices). Thin: the work is in ``homediag.conformance``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from homediag import bodies, conformance
from homediag.adapters.devices import DecodeError, UnknownAdapter
from homediag.adapters.devices import get as get_adapter
from homediag.envelope import Envelope, EnvelopeDevice
from homediag.errors import BadRequest
from homediag.fhir_profiles import Issue, operation_outcome
from homediag.runtime import Runtime
from homediag.users import Principal

from .deps import RuntimeDep
from .policy import VENDOR_TOOLS, Caller, enforce, principal
from .priority import ReadRoute
from .responses import FhirResponse, JsonResponse

# GETs on the read threads (api/priority.py)
router = APIRouter(tags=["vendor"], route_class=ReadRoute)

VendorReader = Annotated[Caller, Depends(enforce(VENDOR_TOOLS))]
VendorDep = Annotated[Principal, Depends(principal(VENDOR_TOOLS))]


class SandboxRequest(Envelope):
    """The ingest envelope without a patient: the adapter comes from the path; device and
    received_at are optional. ``{"payload_hex": "..."}`` alone is a request."""

    adapter: str | None = None  # type: ignore[assignment]
    device: EnvelopeDevice | None = None  # type: ignore[assignment]
    patient: Any = None
    received_at: AwareDatetime | None = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _no_patient(self) -> SandboxRequest:
        if self.patient is not None:
            raise ValueError("the sandbox takes no patient: remove 'patient' (never send a CPR to the sandbox)")
        return self


def _request_issues(exc: ValidationError) -> list[Issue]:
    issues = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        # the message only: pydantic's input echo could hold whatever was sent as the patient
        issues.append(Issue("error", "structure", f"{where}: {err['msg']}", where))
    return issues


@router.post(
    "/sandbox/{adapter}",
    summary="Try a payload with an adapter: the FHIR Bundle and the validation OperationOutcome; stores nothing",
    description=(
        "Body: the ingest envelope without `patient` (`payload_hex`, `payload_base64` or `data`; "
        '`device` and `received_at` optional), or just `{"payload_hex": "..."}`. Answers 200 with '
        '`{"bundle", "outcome", "verdict"}`; 422 with an OperationOutcome when the adapter refuses the '
        "payload; 404 for an unknown adapter. The Observations are built for the example patient "
        "(`Patient/example`), with the device given (else `Device/example`) and the receive time given "
        "(else 2026-01-01T00:00:00Z, as the conformance kit). Vendor or admin token. Audited."
    ),
)
async def sandbox(adapter: str, request: Request, rt: RuntimeDep, caller: VendorDep) -> FhirResponse:
    body = await request.body()
    return await run_in_threadpool(_sandbox, rt, caller, adapter, body)


def _sandbox(rt: Runtime, caller: Principal, adapter_id: str, body: bytes) -> FhirResponse:
    def refuse(status: int, audit_outcome: str, issues: list[Issue]) -> FhirResponse:
        conformance.record_sandbox(rt, caller, adapter_id, audit_outcome, issues[0].diagnostics)
        return FhirResponse(operation_outcome(issues), status_code=status)

    try:
        parsed = bodies.loads(body)  # not JSON, nested too deep, a NUL or a lone surrogate
    except bodies.BodyError as exc:
        return refuse(400, "invalid", [Issue("error", "structure", str(exc), exc.where)])
    if not isinstance(parsed, dict):
        return refuse(
            400,
            "invalid",
            [Issue("error", "structure", f"the body is a JSON object, got {type(parsed).__name__}", "body")],
        )
    try:
        req = SandboxRequest.model_validate(parsed)
    except ValidationError as exc:
        return refuse(400, "invalid", _request_issues(exc))
    if req.adapter is not None and req.adapter != adapter_id:
        return refuse(
            400,
            "invalid",
            [
                Issue(
                    "error",
                    "invalid",
                    f"the body names adapter '{req.adapter}' but the path '{adapter_id}'; leave 'adapter' out",
                    "adapter",
                )
            ],
        )
    try:
        adapter = get_adapter(adapter_id)
    except UnknownAdapter as exc:
        return refuse(404, "unknown-adapter", [Issue("error", "not-found", str(exc), "adapter")])
    try:
        payload = req.payload_json() if adapter.input_kind == "json" else req.payload_bytes()
    except DecodeError as exc:
        return refuse(
            422, "refused", [Issue("error", "structure", f"{adapter.id}: {exc}", exc.field or req.payload_field)]
        )

    from homediag.ingest import device_id

    ctx = conformance.sandbox_context(
        device_id=device_id(req.device) if req.device is not None else None,
        received_at=req.received_at,
        local_zone=rt.local_zone,
        npu_system=rt.settings.npu_system,
    )
    trial = conformance.try_payload(adapter, payload, ctx, payload_field=req.payload_field)
    if trial.refusal is not None or trial.crash is not None:
        return refuse(422, trial.verdict, trial.all_issues())
    errors = sum(1 for i in trial.issues if i.severity in ("error", "fatal"))
    conformance.record_sandbox(
        rt, caller, adapter.id, trial.verdict, f"{len(trial.built)} Observation(s), {errors} error(s)"
    )
    return JsonResponse({"bundle": trial.bundle(), "outcome": trial.outcome(), "verdict": trial.verdict})


@router.get(
    "/uploads",
    summary="The upload log of the caller's own devices, newest first",
    description=(
        "Vendor token: the uploads from devices whose manufacturer is the vendor's organisation; "
        "admin: all uploads. Each with id, received_at, adapter, device, outcome, counts, issues "
        "(OperationOutcome) and the redacted envelope; never a patient's key, id or CPR. Paged with "
        "`_count` (default 50, at most 500) and `_offset`; a page holds at most HOMEDIAG_UPLOADS_PAGE_BYTES "
        "of envelopes (1 MiB): a larger envelope is read on its own, `GET /uploads/{id}`. Audited."
    ),
)
def uploads(
    request: Request,
    caller: VendorReader,
    rt: RuntimeDep,
    count: Annotated[int, Query(alias="_count", ge=0, le=999_999_999)] = 50,
    offset: Annotated[int, Query(alias="_offset", ge=0, le=999_999_999)] = 0,
) -> FhirResponse:
    unknown = sorted(set(request.query_params) - {"_count", "_offset"})
    if unknown:
        raise BadRequest(
            f"unknown parameter(s) {', '.join(unknown)}; /uploads takes _count and _offset",
            unknown[0],
            code="not-supported",
        )
    page = caller.access.list_uploads(
        caller.user, count=count, offset=offset, page_bytes=rt.settings.uploads_page_bytes
    )
    document: dict[str, Any] = {
        "total": page.total,
        "count": page.count,
        "offset": page.offset,
        "uploads": page.uploads,
    }
    if page.count and page.offset + page.count < page.total:
        document["next"] = f"{request.url.path}?_count={page.count}&_offset={page.offset + page.count}"
    return JsonResponse(document)


@router.get(
    "/uploads/{upload_id}",
    summary="One upload of the caller's own devices, its envelope whatever its size",
    description=(
        "The same entry as on `GET /uploads` (and under the same rules: a vendor's own devices only, "
        "never an identity), with the redacted envelope even when it is too large for a page. 404 for "
        "an upload that does not exist or may not be seen. Audited."
    ),
)
def upload(upload_id: str, caller: VendorReader) -> FhirResponse:
    return JsonResponse(caller.access.read_upload(caller.user, upload_id))
