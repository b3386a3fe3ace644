"""Dependencies declared once: the runtime and the base URL. Who calls is decided by the route's
policy (``policy.enforce``), never here.

Both are ``async def``: they never block, and FastAPI runs a plain ``def`` dependency in the thread pool (a
thread hop each, on every request of every route that declares them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from homediag.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


async def fhir_base(request: Request, rt: Annotated[Runtime, Depends(get_runtime)]) -> str:
    if rt.settings.public_base_url:
        return rt.settings.public_base_url.rstrip("/") + "/fhir"
    return str(request.base_url).rstrip("/") + "/fhir"


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
BaseDep = Annotated[str, Depends(fhir_base)]
