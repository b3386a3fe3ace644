"""The FHIR API (base ``/fhir``): metadata, Observation, Patient, Consent, Device, StructureDefinition,
AuditEvent. Every route declares its policy; every read of patient data goes through ``caller.access``."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response

from homediag import bodies, bundles, enrolment, served, versions
from homediag.errors import BadRequest, NotFound, Unavailable
from homediag.fhir_profiles import Issue, operation_outcome, validate
from homediag.fhir_profiles.profiles import PROFILES
from homediag.fhir_profiles.publish import published_structure_definition
from homediag.search_params import parse_count, parse_observation_query, parse_reference

from .capability import STRUCTURE_DEFINITION_PARAMETERS, capability_statement
from .deps import BaseDep, RuntimeDep
from .policy import (
    ADMIN_READ,
    ADMIN_WRITE,
    ANY_USER,
    CLINICAL_READ,
    DEVICE_READ,
    PATIENT_READ,
    PUBLIC,
    Caller,
    Deferred,
    deferred,
    enforce,
)
from .priority import ReadRoute, run_read
from .responses import FhirResponse
from .smart import smart_configuration
from .versioned import check_if_match, versioned

# GETs on the read threads (api/priority.py)
router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=ReadRoute)

Public = Annotated[Caller, Depends(enforce(PUBLIC))]
AnyUser = Annotated[Caller, Depends(enforce(ANY_USER))]
ClinicalReader = Annotated[Caller, Depends(enforce(CLINICAL_READ))]
# the searches apply the policy in their own worker thread: the token's read and the search share one thread hop
ClinicalSearch = Annotated[Deferred, Depends(deferred(CLINICAL_READ))]
PatientReader = Annotated[Caller, Depends(enforce(PATIENT_READ))]
DeviceReader = Annotated[Caller, Depends(enforce(DEVICE_READ))]
AdminReader = Annotated[Caller, Depends(enforce(ADMIN_READ))]
AdminWriter = Annotated[Caller, Depends(enforce(ADMIN_WRITE))]


async def _resource(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        resource = bodies.loads(body)  # not JSON, nested too deep, a NUL or a lone surrogate: 400, naming where
    except bodies.BodyError as exc:
        raise BadRequest(str(exc), exc.where, code="structure") from None
    if not isinstance(resource, dict) or "resourceType" not in resource:
        raise BadRequest("the body must be a FHIR resource (a JSON object with resourceType)", code="structure")
    return resource


def _only(request: Request, allowed: tuple[str, ...]) -> list[tuple[str, str]]:
    """The query's parameters, refusing any not in ``allowed`` (nothing is silently ignored)."""
    items = list(request.query_params.multi_items())
    for name, _value in items:
        if name not in allowed:
            raise BadRequest(f"unknown search parameter '{name}'; supported: {', '.join(allowed)}", name)
    return items


@router.get("/metadata", summary="CapabilityStatement")
def metadata(base: BaseDep, rt: RuntimeDep, _caller: Public) -> FhirResponse:
    try:
        smart = smart_configuration(rt)
    except Unavailable:  # the issuer cannot be asked now: the statement says what is sure
        smart = None
    return FhirResponse(capability_statement(base, smart))


# -- Observation -----------------------------------------------------------------------------
@router.post("/Observation/$validate", summary="Validate an Observation against the profiles; stores nothing")
async def validate_observation(request: Request, _caller: AnyUser) -> FhirResponse:
    """Accepts the resource itself, or a Parameters resource with a ``resource`` parameter.
    Answers 200 with the OperationOutcome (errors included); 400 only when there is nothing to validate."""
    resource = await _resource(request)
    if resource.get("resourceType") == "Parameters":
        found = [
            p.get("resource")
            for p in resource.get("parameter") or []
            if isinstance(p, dict) and p.get("name") == "resource"
        ]
        if len(found) != 1 or not isinstance(found[0], dict):
            raise BadRequest(
                "a Parameters body needs exactly one 'resource' parameter", "Parameters.parameter", code="required"
            )
        resource = found[0]
    return FhirResponse(operation_outcome(validate(resource)))


def _lenient(request: Request) -> bool:
    """``Prefer: handling=lenient`` (unknown parameters ignored and reported); strict otherwise."""
    for part in request.headers.get("prefer", "").replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "handling":
            return value.strip().strip('"').lower() == "lenient"
    return False


def _observation_search(
    request: Request, items: list[tuple[str, str]], rt: Any, caller: Caller, base: str
) -> FhirResponse:
    cursor = caller.access.page_cursor(caller.user, items, caller.purpose)
    if cursor is not None:
        items = cursor.items
    query = parse_observation_query(
        items,
        rt.local_zone,
        rt.settings.default_page_size,
        rt.settings.max_page_size,
        rt.settings.max_search_values,
        lenient=_lenient(request),
    )
    items = [(k, v) for k, v in items if k not in query.ignored]  # the walk goes on without them
    return SplicedResponse(caller.access.search_observations(caller.user, query, base, items, caller.purpose, cursor))


class SplicedResponse(FhirResponse):
    """A searchset or history whose entries may be stored texts (``fhirjson.Raw``): written around them."""

    def render(self, content: Any) -> bytes:
        return served.bundle_bytes(content)


@router.get("/Observation", summary="Search Observations the caller may see")
def search_observations(request: Request, rt: RuntimeDep, policy: ClinicalSearch, base: BaseDep) -> FhirResponse:
    return _observation_search(request, list(request.query_params.multi_items()), rt, policy.caller(), base)


@router.post("/Observation/_search", summary="Search Observations with the parameters in a form body")
async def search_observations_post(
    request: Request, rt: RuntimeDep, caller: ClinicalReader, base: BaseDep
) -> FhirResponse:
    kind = request.headers.get("content-type", "application/x-www-form-urlencoded").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest(
            f"POST _search takes its parameters as application/x-www-form-urlencoded, not {kind[:60]}",
            "Content-Type",
        )
    body = (await request.body()).decode("utf-8", errors="replace")
    items = [*request.query_params.multi_items(), *parse_qsl(body, keep_blank_values=True)]
    return await run_read(_observation_search, request, items, rt, caller, base)


@router.get("/Patient/{patient_id}/Observation", summary="The Observations of one patient (compartment search)")
def patient_observations(
    patient_id: str, request: Request, rt: RuntimeDep, policy: ClinicalSearch, base: BaseDep
) -> FhirResponse:
    caller = policy.caller()
    items = list(request.query_params.multi_items())
    if not any(k == "_page" for k, _ in items):
        items = [("patient", patient_id), *items]
    return _observation_search(request, items, rt, caller, base)


@router.get("/Observation/_history", summary="Type history: the readings the caller may see, newest stored first")
def observation_type_history(request: Request, rt: RuntimeDep, caller: ClinicalReader, base: BaseDep) -> FhirResponse:
    """``_count`` and ``_since`` (an instant); a reading has one version, so this lists each reading the
    caller may see once, as it was stored, newest first; paged like a search (a snapshot)."""
    items = list(request.query_params.multi_items())
    cursor = caller.access.page_cursor(caller.user, items, caller.purpose)
    if cursor is not None:
        items = cursor.items
    else:
        converted = [("_sort", "-_lastUpdated")]
        for name, value in items:
            if name == "_count":
                converted.append((name, value))
            elif name == "_since":
                if not value[:1].isdigit():
                    raise BadRequest(f"_since: an instant (e.g. 2026-11-30T08:00:00Z), not '{value[:40]}'", name)
                converted.append(("_lastUpdated", f"ge{value}"))
            else:
                raise BadRequest(f"unknown parameter '{name}' of a history; supported: _count, _since", name)
        items = converted
    query = parse_observation_query(
        items, rt.local_zone, rt.settings.default_page_size, rt.settings.max_page_size, rt.settings.max_search_values
    )
    page = caller.access.search_observations(
        caller.user, query, base, items, caller.purpose, cursor, path="Observation/_history"
    )
    return SplicedResponse(bundles.history_of_searchset(base, page))


@router.get("/Observation/{observation_id}", summary="Read an Observation")
def read_observation(observation_id: str, request: Request, caller: ClinicalReader) -> Response:
    return versioned(request, caller.access.read_observation(caller.user, observation_id, caller.purpose))


@router.get("/Observation/{observation_id}/_history/{version_id}", summary="vread an Observation")
def vread_observation(observation_id: str, version_id: str, request: Request, caller: ClinicalReader) -> Response:
    found = caller.access.read_observation_version(caller.user, observation_id, version_id, caller.purpose)
    return versioned(request, found)


@router.get(
    "/Observation/{observation_id}/_history", summary="The versions of an Observation (one: readings never change)"
)
def observation_history(observation_id: str, caller: ClinicalReader, base: BaseDep) -> FhirResponse:
    return FhirResponse(
        bundles.history(base, [caller.access.read_observation(caller.user, observation_id, caller.purpose)])
    )


# -- Patient ---------------------------------------------------------------------------------
@router.post("/Patient", summary="Enrol a patient (admin)")
async def create_patient(request: Request, rt: RuntimeDep, caller: AdminWriter, base: BaseDep) -> FhirResponse:
    resource = await _resource(request)
    enrolled = enrolment.enrol_patient(rt, caller.user, resource)
    body = versions.stamp(
        {"resourceType": "Patient", "id": enrolled.patient.id, "active": enrolled.patient.active},
        1,
        enrolled.patient.enrolled_at,
    )
    headers = {"Location": f"{base}/Patient/{enrolled.patient.id}/_history/1"}
    if enrolled.warnings:
        headers["X-Warning"] = "; ".join(enrolled.warnings)
    return versioned(request, body, status_code=201 if enrolled.created else 200, headers=headers)


@router.get("/Patient/{patient_id}", summary="Read a patient (identity for a treating clinician only)")
def read_patient(patient_id: str, request: Request, caller: PatientReader) -> Response:
    """Identity (CPR, name) is disclosed to a treating clinician only with an ``X-Reidentification-Reason``
    header, and audited as a re-identification."""
    patient = caller.access.read_patient(caller.user, patient_id, purpose=caller.purpose, reason=caller.reason)
    return versioned(request, patient)


@router.get("/Patient/{patient_id}/_history/{version_id}", summary="vread a patient")
def vread_patient(patient_id: str, version_id: str, request: Request, caller: PatientReader) -> Response:
    found = caller.access.read_patient_version(
        caller.user, patient_id, version_id, purpose=caller.purpose, reason=caller.reason
    )
    return versioned(request, found)


@router.get("/Patient/{patient_id}/_history", summary="The versions of a patient record (one)")
def patient_history(patient_id: str, caller: PatientReader, base: BaseDep) -> FhirResponse:
    found = caller.access.read_patient(caller.user, patient_id, purpose=caller.purpose, reason=caller.reason)
    return FhirResponse(bundles.history(base, [found]))


# -- Consent ---------------------------------------------------------------------------------
@router.post("/Consent", summary="Record a consent (admin)")
async def create_consent(request: Request, rt: RuntimeDep, caller: AdminWriter, base: BaseDep) -> FhirResponse:
    resource = await _resource(request)
    stored = enrolment.record_consent(rt, caller.user, resource)
    location = f"{base}/Consent/{stored['id']}/_history/{stored['meta']['versionId']}"
    return versioned(request, stored, status_code=201, headers={"Location": location})


@router.put("/Consent/{consent_id}", summary="Update a consent, e.g. set it inactive to withdraw (admin)")
async def update_consent(
    consent_id: str, request: Request, rt: RuntimeDep, caller: AdminWriter, base: BaseDep
) -> Response:
    """``If-Match: W/"n"`` makes the update apply only to version n (412 when the consent has moved on)."""
    resource = await _resource(request)
    stored = enrolment.record_consent(
        rt, caller.user, resource, consent_id, if_match=lambda current: check_if_match(request, current)
    )
    location = f"{base}/Consent/{stored['id']}/_history/{stored['meta']['versionId']}"
    return versioned(request, stored, headers={"Location": location})


@router.get("/Consent/{consent_id}", summary="Read a consent (admin)")
def read_consent(consent_id: str, request: Request, caller: AdminReader) -> Response:
    return versioned(request, caller.access.read_consent(caller.user, consent_id))


@router.get("/Consent/{consent_id}/_history/{version_id}", summary="vread a consent (admin)")
def vread_consent(consent_id: str, version_id: str, request: Request, caller: AdminReader) -> Response:
    return versioned(request, caller.access.read_consent_version(caller.user, consent_id, version_id))


@router.get("/Consent/{consent_id}/_history", summary="Every version of a consent (admin)")
def consent_history(consent_id: str, caller: AdminReader, base: BaseDep) -> FhirResponse:
    return FhirResponse(bundles.history(base, caller.access.consent_history(caller.user, consent_id)))


@router.get("/Consent", summary="Search consents by patient (admin)")
def search_consents(request: Request, caller: AdminReader, base: BaseDep) -> FhirResponse:
    patient_id = None
    for name, value in _only(request, ("patient",)):
        patient_id = parse_reference(value, "Patient", name)
    found = caller.access.search_consents(caller.user, patient_id)
    return FhirResponse(bundles.searchset(base, found, links={"self": str(request.url)}))


# -- Device ----------------------------------------------------------------------------------
@router.get(
    "/Device/{device_id}",
    summary="Read a device (a clinician: of a patient it may see; admin)",
)
def read_device(device_id: str, request: Request, caller: DeviceReader) -> Response:
    return versioned(request, caller.access.read_device(caller.user, device_id, caller.purpose))


@router.get("/Device/{device_id}/_history/{version_id}", summary="vread a device (its current version)")
def vread_device(device_id: str, version_id: str, request: Request, caller: DeviceReader) -> Response:
    return versioned(request, caller.access.read_device_version(caller.user, device_id, version_id, caller.purpose))


@router.get("/Device/{device_id}/_history", summary="The versions of a device kept (the current one)")
def device_history(device_id: str, caller: DeviceReader, base: BaseDep) -> FhirResponse:
    return FhirResponse(bundles.history(base, [caller.access.read_device(caller.user, device_id, caller.purpose)]))


# -- StructureDefinition ---------------------------------------------------------------------
def _structure_definition(profile_id: str) -> dict[str, Any]:
    sd = published_structure_definition(profile_id)
    if sd is None:
        raise NotFound(f"StructureDefinition/{profile_id} is not known; see GET /fhir/StructureDefinition")
    return versions.structure_definition(sd)


@router.get("/StructureDefinition/{profile_id}", summary="A published profile (no token needed)")
def read_structure_definition(profile_id: str, request: Request, _caller: Public) -> Response:
    return versioned(request, _structure_definition(profile_id))


@router.get(
    "/StructureDefinition/{profile_id}/_history/{version_id}",
    summary="vread a published profile (version 1)",
)
def vread_structure_definition(profile_id: str, version_id: str, request: Request, _caller: Public) -> Response:
    sd = _structure_definition(profile_id)
    if version_id != sd["meta"]["versionId"]:
        raise NotFound(f"StructureDefinition/{profile_id} has no version {version_id[:20]} (only version 1)")
    return versioned(request, sd)


@router.get("/StructureDefinition", summary="Search the published profiles by url, name, type, version (no token)")
def search_structure_definitions(request: Request, base: BaseDep, _caller: Public) -> FhirResponse:
    """``url`` (exact, ``|version`` allowed), ``name`` (starts with, any case; ``name:exact``), ``type``,
    ``version``, ``_id``; comma for OR, repeated for AND."""
    found = [_structure_definition(p.id) for p in PROFILES.values()]
    allowed = (*STRUCTURE_DEFINITION_PARAMETERS, "name:exact", "_count")
    ignored: list[str] = []
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            if _lenient(request):
                ignored.append(name)
                continue
            raise BadRequest(f"unknown search parameter '{name}'; supported: {', '.join(allowed)}", name)
        if name == "_count":
            parse_count(value, name)
            continue
        options = value.split(",")
        found = [sd for sd in found if any(_sd_matches(sd, name, option) for option in options)]
    outcome = None
    if ignored:
        issues = [Issue("warning", "not-supported", f"unknown search parameter '{n}' ignored", n) for n in ignored]
        outcome = operation_outcome(issues)
    links = {"self": str(request.url)}
    return FhirResponse(bundles.searchset(base, found, links=links, outcome=outcome))


def _sd_matches(sd: dict[str, Any], name: str, value: str) -> bool:
    if name == "url":
        url, _, version = value.partition("|")
        return sd.get("url") == url and (not version or sd.get("version") == version)
    if name == "name":
        return str(sd.get("name", "")).lower().startswith(value.lower())
    if name == "name:exact":
        return sd.get("name") == value
    field = {"type": "type", "version": "version", "_id": "id"}[name]
    return sd.get(field) == value


# -- AuditEvent ------------------------------------------------------------------------------
@router.get("/AuditEvent", summary="The audit log as AuditEvent resources (admin), newest first; audited")
def search_audit_events(request: Request, caller: AdminReader, base: BaseDep) -> FhirResponse:
    count, offset, patient_id, action = 50, 0, None, None
    for name, value in _only(request, ("patient", "type", "_count", "_offset")):
        if name == "_count":
            count = min(parse_count(value, name), 500)
        elif name == "_offset":
            offset = parse_count(value, name)
        elif name == "patient":
            patient_id = parse_reference(value, "Patient", name)
        else:
            action = value
    page = caller.access.search_audit_events(
        caller.user, patient_id=patient_id, action=action, count=count, offset=offset
    )
    links = {}
    if count and offset + count < page.total:
        links["next"] = str(request.url.include_query_params(_offset=offset + count, _count=count))
    links["self"] = str(request.url)
    bundle = bundles.searchset(base, page.events, total=page.total, links=links)
    return FhirResponse(bundle)
