"""``POST /fhir`` (transaction or batch Bundle) and ``POST /fhir/Observation``: gateways that speak the HL7 PHD IG."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from homediag.phd import GatewayResult, PhdGatewayService

from .deps import BaseDep, RuntimeDep
from .policy import GATEWAY_WRITE, Deferred, deferred
from .priority import run_ingest
from .responses import FhirResponse
from .versioned import version_headers

router = APIRouter(prefix="/fhir", tags=["gateway"])

# the policy is applied in the route's one worker thread, with the service (``policy.deferred``)
GatewayDep = Annotated[Deferred, Depends(deferred(GATEWAY_WRITE))]


def _response(result: GatewayResult, base: str) -> FhirResponse:
    headers = {"X-Upload-Id": result.upload, **version_headers(result.body)}
    if result.location:
        headers["Location"] = f"{base}/{result.location}"
    return FhirResponse(result.body, status_code=result.status, headers=headers)


@router.post(
    "",
    summary="A transaction or batch Bundle of Patient, Device and Observation entries (PHD IG gateways)",
    description=(
        "Kept in the upload log as sent. Patients are matched to enrolled ones (CPR or a registered alias) "
        "and never stored; Devices are upserted by identifier; Observations are validated and stored "
        "idempotently (conditional create with request.ifNoneExist=identifier=system|value). A transaction "
        "answers a transaction-response Bundle, or 422 with an OperationOutcome naming the failed entries "
        "when nothing was stored; a batch answers a batch-response Bundle with a status per entry."
    ),
)
async def post_bundle(request: Request, rt: RuntimeDep, gateway: GatewayDep, base: BaseDep) -> FhirResponse:
    body = await request.body()
    result = await run_ingest(lambda: PhdGatewayService(rt).post_bundle(gateway.principal(), body))
    return _response(result, base)


@router.post(
    "/Observation",
    summary="One Observation from a PHD IG gateway",
    description=(
        "201 with the stored Observation (Location header); 200 when an Observation with the same "
        "identifier is stored already (If-None-Exist: identifier=system|value, or the PHD dedup identifier); "
        "422 with an OperationOutcome when it is refused. Kept in the upload log either way."
    ),
)
async def post_observation(request: Request, rt: RuntimeDep, gateway: GatewayDep, base: BaseDep) -> FhirResponse:
    body = await request.body()
    condition = request.headers.get("if-none-exist")
    result = await run_ingest(lambda: PhdGatewayService(rt).post_observation(gateway.principal(), body, condition))
    return _response(result, base)
