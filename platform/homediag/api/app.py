"""The ASGI application."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from homediag import __version__
from homediag.errors import ServiceError
from homediag.fhir_profiles import Issue, operation_outcome
from homediag.runtime import Runtime
from homediag.web import install as install_web
from homediag.web.errors import error_page, is_web

from . import fhir, gateway, ingest, monitoring
from .headers import NoStoreForCallers
from .policy import check_policies
from .responses import FhirResponse, error_response
from .vendor import router as vendor_router

log = logging.getLogger(__name__)


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """The app over ``runtime`` (default: from the HOMEDIAG_* settings)."""
    app = FastAPI(
        title="homediag",
        version=__version__,
        description="Home-diagnostics pilot platform: device readings in, consent-checked FHIR R4 out.",
    )
    app.state.runtime = runtime or Runtime.from_settings()

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        if is_web(request):  # the web app's pages answer people with HTML
            return error_page(request, exc, exc.status)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        if is_web(request):
            return error_page(request, None, 400)
        issues = [
            Issue("error", "invalid", str(e.get("msg")), ".".join(str(p) for p in e.get("loc", ())))
            for e in exc.errors()
        ]
        return FhirResponse(operation_outcome(issues), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_web(request):
            return error_page(request, None, exc.status_code)
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return FhirResponse(operation_outcome([Issue("error", code, str(exc.detail))]), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> FhirResponse:
        """Whatever went wrong of ours: a 500 that is still an OperationOutcome, naming no internals."""
        log.exception("unexpected error answering a request")
        issue = Issue("error", "exception", f"the platform could not answer this request ({type(exc).__name__})")
        return FhirResponse(operation_outcome([issue]), status_code=500)

    app.add_middleware(NoStoreForCallers)
    app.include_router(ingest.router)
    app.include_router(gateway.router)
    app.include_router(fhir.router)
    app.include_router(vendor_router)
    app.include_router(monitoring.router)
    install_web(app)  # the clinician web app under /app (homediag.web)
    check_policies(app)
    return app
