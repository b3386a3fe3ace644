"""``POST /ingest``: one envelope or a list of them, from a gateway."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from homediag.ingest import IngestService
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
    answer = await run_in_threadpool(IngestService(rt).post, gateway, body)
    return JsonResponse(answer.body, status_code=answer.status)
