"""The ASGI application."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from homediag import __version__
from homediag.errors import ServiceError, Unavailable
from homediag.fhir_profiles import Issue, operation_outcome
from homediag.runtime import Runtime

from . import fhir, gateway, health, ingest
from .headers import NoStoreForCallers
from .limits import BodyLimit
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
    async def _service_error(_request: Request, exc: ServiceError) -> FhirResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> FhirResponse:
        issues = [
            Issue("error", "invalid", str(e.get("msg")), ".".join(str(p) for p in e.get("loc", ())))
            for e in exc.errors()
        ]
        return FhirResponse(operation_outcome(issues), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> FhirResponse:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return FhirResponse(operation_outcome([Issue("error", code, str(exc.detail))]), status_code=exc.status_code)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _database_unavailable(_request: Request, exc: Exception) -> FhirResponse:
        """The database went away mid-request: 503 with Retry-After, so a gateway sends again (writes are
        idempotent: a reading sent twice is stored once)."""
        log.warning("database unavailable answering a request: %s", type(exc).__name__)
        return error_response(
            Unavailable("the database cannot be reached just now; nothing of this request was lost, send it again")
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> FhirResponse:
        """Whatever went wrong of ours: a 500 that is still an OperationOutcome, naming no internals."""
        log.exception("unexpected error answering a request")
        issue = Issue("error", "exception", f"the platform could not answer this request ({type(exc).__name__})")
        return FhirResponse(operation_outcome([issue]), status_code=500)

    app.add_middleware(NoStoreForCallers)
    app.add_middleware(BodyLimit, settings=app.state.runtime.settings)  # outermost: before anything reads
    app.include_router(health.router)
    app.include_router(ingest.router)
    app.include_router(gateway.router)
    app.include_router(fhir.router)
    app.include_router(vendor_router)
    check_policies(app)
    return app
