"""The monitoring face (``/monitoring/...``, JSON) and the reviews as FHIR (``/fhir/Task``, ``/fhir/Provenance``).
Thin: every read and write goes through ``caller.access`` (``homediag.access.monitoring``), clinicians only."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from homediag import bundles
from homediag.errors import BadRequest
from homediag.fhir_profiles import fhirjson
from homediag.monitoring import default_groups
from homediag.monitoring.store import TriagedReading
from homediag.runtime import Runtime
from homediag.search_params import parse_count, parse_reference

from .deps import BaseDep, RuntimeDep
from .policy import MONITORING_READ, MONITORING_WRITE, Caller, enforce
from .priority import ReadRoute
from .responses import FhirResponse, JsonResponse

# GETs on the read threads (api/priority.py)
router = APIRouter(tags=["monitoring"], route_class=ReadRoute)

Reader = Annotated[Caller, Depends(enforce(MONITORING_READ))]
Writer = Annotated[Caller, Depends(enforce(MONITORING_WRITE))]

DEFAULT_DAYS = 7
_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')


def _only(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query's parameters (each at most once), refusing any not in ``allowed``."""
    out: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise BadRequest(f"unknown parameter '{name}'; supported: {', '.join(allowed) or 'none'}", name)
        if name in out:
            raise BadRequest(f"'{name}' is given twice", name)
        out[name] = value
    return out


def _moment(rt: Runtime, value: str, name: str, *, end: bool) -> datetime:
    """A date-time with an offset, or a date (a whole local day: its start, or for ``end`` the next midnight)."""
    try:
        if "T" not in value:
            day = date.fromisoformat(value)
            day = day + timedelta(days=1) if end else day
            return datetime.combine(day, time(0), tzinfo=rt.local_zone)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} must be a date (2026-03-01) or a date-time with an offset, got {value!r}", name
        ) from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{name} needs a UTC offset (e.g. 2026-03-01T08:00:00+01:00), got {value!r}", name)
    return parsed


def _period(rt: Runtime, params: dict[str, str]) -> tuple[datetime, datetime]:
    """``start``/``end`` (dates or date-times), or ``days`` back from ``end`` (default now, 7 days)."""
    end = _moment(rt, params["end"], "end", end=True) if "end" in params else rt.clock()
    if "start" in params and "days" in params:
        raise BadRequest("give either start or days, not both", "days")
    if "start" in params:
        return _moment(rt, params["start"], "start", end=False), end
    days = parse_count(params["days"], "days") if "days" in params else DEFAULT_DAYS
    if not 1 <= days <= 400:
        raise BadRequest(f"days must be between 1 and 400 (got {days})", "days")
    return end - timedelta(days=days), end


async def _json(request: Request) -> Any:
    body = await request.body()
    if not body:
        return {}
    try:
        return fhirjson.loads(body)
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}", "body", code="structure") from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", "body", code="structure")
    return body


def _if_match(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    match = _ETAG.match(header)
    if match is None:
        raise BadRequest(f'If-Match must name a version, e.g. W/"3"; got {header!r}', "If-Match")
    return int(match[1])


def reading_json(r: TriagedReading) -> dict[str, Any]:
    """One triaged reading for the web app and the API."""
    verdicts = {v.measure: v for v in r.result.verdicts}
    return {
        "observation": f"Observation/{r.id}",
        "effective": r.effective.isoformat().replace("+00:00", "Z"),
        "received_at": r.received_at.isoformat().replace("+00:00", "Z") if r.received_at else None,
        "gateway_received_at": r.gateway_received_at.isoformat().replace("+00:00", "Z")
        if r.gateway_received_at
        else None,
        "colour": r.colour.value if r.result.triaged else None,
        "reasons": r.result.reasons,
        "values": [
            {
                "measure": v.measure,
                "value": v.value,
                "unit": v.unit,
                "colour": verdicts[v.measure].colour.value if v.measure in verdicts else None,
                "interpretation": verdicts[v.measure].direction.value if v.measure in verdicts else None,
            }
            for v in r.values
        ],
        "settings_version": r.version.version,
        "acknowledged": r.acknowledged,
    }


# -- groups, worklist, status ----------------------------------------------------------------------------
@router.get("/monitoring/groups", summary="The default thresholds and plan of each patient group")
def groups(request: Request, _caller: Reader) -> JsonResponse:
    _only(request, ())
    return JsonResponse(
        {"groups": [{"name": g.name, "title": g.title, **g.settings.to_json()} for g in default_groups().values()]}
    )


def _adherence_from(params: dict[str, str], end: datetime) -> datetime | None:
    if "adherence_days" not in params:
        return None
    days = parse_count(params["adherence_days"], "adherence_days")
    if not 1 <= days <= 400:
        raise BadRequest(f"adherence_days must be between 1 and 400 (got {days})", "adherence_days")
    return end - timedelta(days=days)


@router.get("/monitoring/worklist", summary="Every patient in my care with triage colour, adherence, last review")
def worklist(request: Request, rt: RuntimeDep, caller: Reader) -> JsonResponse:
    """Colours over the period (``start``/``end`` or ``days``, default 7), adherence over ``adherence_days``
    back from its end (default: the same period)."""
    params = _only(request, ("start", "end", "days", "adherence_days"))
    start, end = _period(rt, params)
    statuses = caller.access.worklist(
        caller.user, start, end, caller.purpose, adherence_from=_adherence_from(params, end)
    )
    return JsonResponse(
        {"start": start.isoformat(), "end": end.isoformat(), "patients": [s.to_json() for s in statuses]}
    )


@router.get("/monitoring/patients/{patient_id}/status", summary="A patient's triage colour, reasons and adherence")
def status(patient_id: str, request: Request, rt: RuntimeDep, caller: Reader) -> JsonResponse:
    params = _only(request, ("start", "end", "days", "adherence_days"))
    start, end = _period(rt, params)
    found = caller.access.patient_status(
        caller.user, patient_id, start, end, caller.purpose, adherence_from=_adherence_from(params, end)
    )
    return JsonResponse(found.to_json())


@router.get("/monitoring/patients/{patient_id}/readings", summary="A patient's readings of a period, triaged")
def readings(patient_id: str, request: Request, rt: RuntimeDep, caller: Reader) -> JsonResponse:
    start, end = _period(rt, _only(request, ("start", "end", "days")))
    found = caller.access.triaged_readings(caller.user, patient_id, start, end, caller.purpose)
    return JsonResponse({"readings": [reading_json(r) for r in found]})


# -- settings ------------------------------------------------------------------------------------------
@router.get("/monitoring/patients/{patient_id}/settings", summary="Thresholds and plan in force, and every version")
def read_settings(patient_id: str, request: Request, caller: Reader) -> JsonResponse:
    _only(request, ())
    found = caller.access.monitoring_settings(caller.user, patient_id, caller.purpose)
    return JsonResponse(found, headers={"ETag": f'W/"{found["latest_version"]}"'})


@router.put("/monitoring/patients/{patient_id}/settings", summary='Record a new version (If-Match: W/"<version>")')
async def change_settings(patient_id: str, request: Request, caller: Writer) -> JsonResponse:
    _only(request, ())
    body = _object(await _json(request))
    stored = caller.access.record_monitoring_settings(caller.user, patient_id, body, _if_match(request), caller.purpose)
    return JsonResponse(stored, headers={"ETag": f'W/"{stored["version"]}"'})


@router.post(
    "/monitoring/patients/{patient_id}/settings/$preview",
    summary="How many alerts proposed settings would have raised in the last 30 days (stores nothing)",
)
async def preview(patient_id: str, request: Request, caller: Reader) -> JsonResponse:
    params = _only(request, ("days",))
    days = parse_count(params["days"], "days") if "days" in params else 30
    body = _object(await _json(request))
    return JsonResponse(caller.access.preview_alerts(caller.user, patient_id, body, days, caller.purpose))


# -- reviews -------------------------------------------------------------------------------------------
@router.post(
    "/monitoring/patients/{patient_id}/acknowledge",
    summary='Acknowledge readings: {"observations": [...]} or {"all_green": true, "start", "end"}; optional "note"',
)
async def acknowledge(patient_id: str, request: Request, rt: RuntimeDep, caller: Writer, base: BaseDep) -> FhirResponse:
    _only(request, ())
    body = _object(await _json(request))
    allowed = ("observations", "all_green", "start", "end", "days", "note")
    for key in body:
        if key not in allowed:
            raise BadRequest(f"unknown field '{key}'; allowed: {', '.join(allowed)}", key)
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise BadRequest("note must be a text", "note")
    ids: list[str] | None = None
    period: tuple[datetime, datetime] | None = None
    if "observations" in body:
        raw = body["observations"]
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise BadRequest('observations must be a list of ids or "Observation/<id>" references', "observations")
        ids = [x.removeprefix("Observation/") for x in raw]
    if body.get("all_green") is True:
        period = _period(rt, {k: str(body[k]) for k in ("start", "end", "days") if body.get(k) is not None})
    elif "all_green" in body and body["all_green"] is not False:
        raise BadRequest("all_green must be true or false", "all_green")
    task = caller.access.acknowledge(
        caller.user, patient_id, observation_ids=ids, all_green=period, note=note, purpose=caller.purpose
    )
    return FhirResponse(task, status_code=201, headers={"Location": f"{base}/Task/{task['id']}"})


def _review_search(request: Request, caller: Caller, base: BaseDep, kind: str) -> FhirResponse:
    patient_id = None
    for name, value in _only(request, ("patient",)).items():
        patient_id = parse_reference(value, "Patient", name)
    return FhirResponse(bundles.searchset(base, caller.access.search_reviews(caller.user, kind, patient_id)))


@router.get("/fhir/Task/{task_id}", summary="A review (acknowledgement) as a FHIR Task")
def read_task(task_id: str, caller: Reader) -> FhirResponse:
    return FhirResponse(caller.access.read_task(caller.user, task_id, caller.purpose))


@router.get("/fhir/Task", summary="Reviews of my patients as FHIR Tasks, newest first (?patient=)")
def search_tasks(request: Request, caller: Reader, base: BaseDep) -> FhirResponse:
    return _review_search(request, caller, base, "Task")


@router.get("/fhir/Provenance/{provenance_id}", summary="Who acknowledged which readings when (FHIR Provenance)")
def read_provenance(provenance_id: str, caller: Reader) -> FhirResponse:
    return FhirResponse(caller.access.read_provenance(caller.user, provenance_id, caller.purpose))


@router.get("/fhir/Provenance", summary="Provenances of reviews of my patients, newest first (?patient=)")
def search_provenance(request: Request, caller: Reader, base: BaseDep) -> FhirResponse:
    return _review_search(request, caller, base, "Provenance")
