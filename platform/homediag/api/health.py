"""Liveness and readiness, for a load balancer or an orchestrator (no token: they show no data).

``/health/live`` says the process answers; ``/health/ready`` says it can serve: the database answers a
query. Not ready is a 503 OperationOutcome with ``Retry-After``, so traffic waits instead of failing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from homediag.runtime import Runtime

from .deps import RuntimeDep
from .policy import PUBLIC, Caller, enforce
from .responses import FhirResponse, JsonResponse

router = APIRouter(prefix="/health", tags=["health"])

Public = Annotated[Caller, Depends(enforce(PUBLIC))]


@router.get("/live", summary="The process answers (no database needed)")
def live(_caller: Public) -> FhirResponse:
    return JsonResponse({"status": "live"})


@router.get("/ready", summary="Ready to serve: the database answers (503 with Retry-After when not)")
async def ready(rt: RuntimeDep, _caller: Public) -> FhirResponse:
    await run_in_threadpool(_check_database, rt)
    return JsonResponse({"status": "ready"})


def _check_database(rt: Runtime) -> None:
    from homediag.store.database import check_reachable

    check_reachable(rt.engine)
