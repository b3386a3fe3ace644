"""FHIR Bulk Data export (Bulk Data Access IG 2.0): kick-off at the system, Patient and Group levels (GET with
query parameters, or POST with a ``Parameters`` body, which alone can name patients), the status endpoint
(poll, manifest, cancel) and the NDJSON files. Only the job's owner reads its status and
files; every read of patient data is the access layer's (``homediag.access.export``)."""

from __future__ import annotations

from email.utils import format_datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from homediag import bodies
from homediag.bulk import jobs
from homediag.bulk.request import parameters_items, parse_kickoff
from homediag.bulk.worker import ExportWorker
from homediag.clock import from_store
from homediag.errors import BadRequest
from homediag.fhir_profiles import Issue, operation_outcome
from homediag.runtime import Runtime

from .deps import BaseDep, RuntimeDep
from .policy import EXPORT, Caller, enforce
from .priority import ReadRoute
from .responses import FhirResponse, JsonResponse

# GETs on the read threads (api/priority.py)
router = APIRouter(prefix="/fhir", tags=["bulk data"], route_class=ReadRoute)
Exporter = Annotated[Caller, Depends(enforce(EXPORT))]


def worker_of(app: FastAPI, rt: Runtime) -> ExportWorker | None:
    """The app's export worker, started on first need (the app's lifespan also starts and stops it)."""
    if not rt.settings.export_worker:
        return None
    worker: ExportWorker | None = getattr(app.state, "export_worker", None)
    if worker is None:
        worker = app.state.export_worker = ExportWorker(rt)
        worker.start()
    return worker


def _kick_off(
    request: Request,
    rt: Runtime,
    caller: Caller,
    base: str,
    level: str,
    group_id: str | None,
    parameters: list[tuple[str, str]] | None = None,
) -> Response:
    posted = parameters is not None
    items = parameters if parameters is not None else list(request.query_params.multi_items())
    req = parse_kickoff(
        level, group_id, items, dict(request.headers), str(request.url), zone=rt.local_zone, posted=posted
    )
    job_id = caller.access.start_export(caller.user, caller.purpose, req)
    worker = worker_of(request.app, rt)
    if worker is not None:
        worker.wake()
    outcome = operation_outcome([Issue("information", "informational", f"export job {job_id} accepted")])
    return FhirResponse(outcome, status_code=202, headers={"Content-Location": f"{base}/bulk-status/{job_id}"})


async def _parameters(request: Request) -> list[tuple[str, str]]:
    """A POST kick-off's ``Parameters`` body as items (its query must be empty: the body says it all)."""
    if request.query_params:
        raise BadRequest("a POST kick-off gives its parameters in the Parameters body, not in the query", "query")
    try:
        body = bodies.loads(await request.body())
    except bodies.BodyError as exc:
        raise BadRequest(str(exc), exc.where, code="structure") from None
    return parameters_items(body)


@router.get("/$export", summary="Bulk Data export of everything the caller may export (Prefer: respond-async)")
def export_system(request: Request, rt: RuntimeDep, caller: Exporter, base: BaseDep) -> Response:
    return _kick_off(request, rt, caller, base, "system", None)


@router.post("/$export", summary="Bulk Data export kick-off with a Parameters body")
async def export_system_post(request: Request, rt: RuntimeDep, caller: Exporter, base: BaseDep) -> Response:
    items = await _parameters(request)
    return await run_in_threadpool(_kick_off, request, rt, caller, base, "system", None, items)


@router.get("/Patient/$export", summary="Bulk Data export of all patients the caller may export")
def export_patients(request: Request, rt: RuntimeDep, caller: Exporter, base: BaseDep) -> Response:
    return _kick_off(request, rt, caller, base, "patient", None)


@router.post("/Patient/$export", summary="Bulk Data export of patients, named by patient references if given")
async def export_patients_post(request: Request, rt: RuntimeDep, caller: Exporter, base: BaseDep) -> Response:
    items = await _parameters(request)
    return await run_in_threadpool(_kick_off, request, rt, caller, base, "patient", None, items)


@router.get("/Group/{group_id}/$export", summary="Bulk Data export of one pilot's patients (Group id = the pilot)")
def export_group(group_id: str, request: Request, rt: RuntimeDep, caller: Exporter, base: BaseDep) -> Response:
    return _kick_off(request, rt, caller, base, "group", group_id)


@router.post("/Group/{group_id}/$export", summary="Bulk Data export of one pilot's patients, with a Parameters body")
async def export_group_post(
    group_id: str, request: Request, rt: RuntimeDep, caller: Exporter, base: BaseDep
) -> Response:
    items = await _parameters(request)
    return await run_in_threadpool(_kick_off, request, rt, caller, base, "group", group_id, items)


@router.get("/Group/{group_id}", summary="A pilot as a Group of the patients the evaluator may export")
def read_group(group_id: str, caller: Exporter) -> Response:
    return FhirResponse(caller.access.read_group(caller.user, caller.purpose, group_id))


@router.get("/bulk-status/{job_id}", summary="An export job's status: 202 in progress, 200 with the manifest")
def export_status(job_id: str, rt: RuntimeDep, caller: Exporter, base: BaseDep) -> Response:
    job = caller.access.export_status(caller.user, job_id)
    if job.status in jobs.ACTIVE:
        headers = {"X-Progress": jobs.progress_text(job), "Retry-After": str(rt.settings.export_retry_after_seconds)}
        return Response(status_code=202, headers=headers)
    if job.status == "failed":
        outcome = operation_outcome([Issue("error", "exception", f"the export failed: {job.error}")])
        return FhirResponse(outcome, status_code=500)
    headers = {"Expires": format_datetime(from_store(job.expires_at), usegmt=True)} if job.expires_at else {}
    return JsonResponse(jobs.manifest(job, base), headers=headers)


@router.delete("/bulk-status/{job_id}", summary="Cancel an export job and remove its files")
def cancel_export(job_id: str, caller: Exporter) -> Response:
    caller.access.cancel_export(caller.user, job_id)
    outcome = operation_outcome([Issue("information", "informational", f"export job {job_id} cancelled")])
    return FhirResponse(outcome, status_code=202)


@router.get("/bulk-files/{job_id}/{file_name}", summary="An NDJSON file of the caller's own export job")
def export_file(job_id: str, file_name: str, caller: Exporter) -> Response:
    path = caller.access.export_file(caller.user, job_id, file_name)
    return FileResponse(path, media_type=jobs.FILE_MEDIA_TYPE)
