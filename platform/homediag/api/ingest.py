"""``POST /ingest``: one envelope or a list of them, from a gateway."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from homediag.fhir_profiles import fhirjson
from homediag.ingest import IngestService
from homediag.runtime import Runtime
from homediag.users import Principal

from .deps import RuntimeDep
from .policy import GATEWAY_WRITE, principal
from .responses import FhirResponse, JsonResponse

router = APIRouter(tags=["ingest"])

GatewayDep = Annotated[Principal, Depends(principal(GATEWAY_WRITE))]


@router.post(
    "/ingest",
    summary="Upload readings: one envelope or a list",
    description=(
        "Every envelope is kept in the upload log with its outcome. A single envelope answers 201 "
        "(created), 200 (duplicate), 202 (held for review: not assigned to the patient automatically), "
        "200 (discarded: not a patient's reading, e.g. a control-solution test) or 422 (rejected); "
        "a list answers 200 with a result per envelope. Each result has `outcome`, the Observations, "
        "and an OperationOutcome."
    ),
)
async def ingest(request: Request, rt: RuntimeDep, gateway: GatewayDep) -> FhirResponse:
    body = await request.body()
    # the service does blocking database work: run it off the event loop
    return await run_in_threadpool(_ingest, rt, gateway, body)


def _ingest(rt: Runtime, gateway: Principal, body: bytes) -> FhirResponse:
    service = IngestService(rt)
    try:
        parsed: Any = fhirjson.loads(body)
    except ValueError as exc:
        result = service.ingest_unreadable(gateway, body, f"the body is not JSON ({exc}); it is kept in the upload log")
        return JsonResponse(result.as_json(), status_code=400)
    if isinstance(parsed, list):
        results = service.ingest(gateway, parsed)
        return JsonResponse({"results": [r.as_json() for r in results]}, status_code=200)
    result = service.ingest_one(gateway, parsed, body=body)
    status = {"created": 201, "duplicate": 200, "held": 202, "discarded": 200}.get(result.outcome, 422)
    return JsonResponse(result.as_json(), status_code=status)
