"""``POST /ingest``: one envelope or a list of them, from a gateway."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from homediag.ingest import IngestAnswer, IngestService
from homediag.users import Principal
from homediag.web import predraw

from .deps import RuntimeDep
from .policy import GATEWAY_WRITE, Deferred, deferred, principal
from .priority import run_ingest, run_list
from .responses import FhirResponse, JsonResponse

router = APIRouter(tags=["ingest"])

# the policy is applied in the route's one worker thread, with the ingest (``policy.deferred``)
GatewayDep = Annotated[Deferred, Depends(deferred(GATEWAY_WRITE))]


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

    def post() -> IngestAnswer:  # blocking database work (the token's read, then the ingest): off the event loop
        return IngestService(rt).post(gateway.principal(), body)

    # at the server's priority; reads of this process give way; a list, in one of several workers, holds its event
    # loop so that new connections go to a free worker (api/priority.py)
    answer = await (run_list if body.lstrip()[:1] == b"[" else run_ingest)(post)
    predraw.after_ingest(rt, answer.body)  # the charts of pages shown before, drawn ahead off the request path
    return JsonResponse(answer.body, status_code=answer.status)


@router.get(
    "/ingest",
    summary="How a gateway should send many envelopes: the size of a list, and how many lists at once",
    description=(
        "`max_envelopes_per_list` (a longer list is refused with 413), `max_upload_bytes` (the largest body), and "
        "`lists_at_once`: how many lists to have in flight, each on a connection of its own (this server's worker "
        "processes, unless its operator set HOMEDIAG_INGEST_LISTS_AT_ONCE). `homediag send` asks it."
    ),
)
async def ingest_limits(
    rt: RuntimeDep, gateway: Annotated[Principal, Depends(principal(GATEWAY_WRITE))]
) -> JsonResponse:
    settings = rt.settings  # nothing to read: the policy's dependency checks the token
    return JsonResponse(
        {
            "max_envelopes_per_list": settings.max_envelopes_per_list,
            "max_upload_bytes": settings.max_upload_bytes,
            "lists_at_once": settings.ingest_lists_at_once or 1,
        }
    )
