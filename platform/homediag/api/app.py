"""The ASGI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from homediag import __version__
from homediag.errors import ServiceError, Unavailable
from homediag.fhir_profiles import Issue, operation_outcome
from homediag.runtime import Runtime
from homediag.web import install as install_web
from homediag.web.errors import error_page, is_web

from . import admin, bulk, evaluation, fhir, gateway, health, ingest, monitoring, priority, smart
from .headers import NoStoreForCallers
from .limits import BodyLimit
from .negotiation import FhirNegotiation
from .policy import check_policies
from .responses import FhirResponse, error_response
from .vendor import router as vendor_router

log = logging.getLogger(__name__)


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """The app over ``runtime`` (default: from the HOMEDIAG_* settings)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bulk.worker_of(app, app.state.runtime)  # resumes unfinished export jobs
        yield
        worker = getattr(app.state, "export_worker", None)
        if worker is not None:
            worker.stop()

    app = FastAPI(
        title="homediag",
        version=__version__,
        description="Home-diagnostics pilot platform: device readings in, consent-checked FHIR R4 out.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime or Runtime.from_settings()
    settings = app.state.runtime.settings
    # the read routes' threads, and how many run beside an ingest (api/priority.py)
    priority.configure(
        settings.read_nice, settings.read_threads, settings.reads_beside_ingest, settings.read_wait_max_ms / 1000
    )

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
    app.add_middleware(FhirNegotiation)  # outermost: a 406 or a HEAD is answered for every /fhir route
    app.add_middleware(BodyLimit, settings=app.state.runtime.settings)  # outermost: before anything reads
    app.include_router(health.router)
    app.include_router(ingest.router)
    app.include_router(gateway.router)
    app.include_router(bulk.router)  # before fhir: /fhir/Patient/$export is not /fhir/Patient/{patient_id}
    app.include_router(smart.router)  # before /fhir/{type}/{id}: /fhir/.well-known/... is no read
    app.include_router(fhir.router)
    app.include_router(vendor_router)
    app.include_router(admin.router)
    app.include_router(evaluation.router)
    app.include_router(monitoring.router)
    install_web(app)  # the clinician web app under /app (homediag.web)
    check_policies(app)
    return app
