"""The FHIR API (base ``/fhir``): metadata, Observation, Patient, Consent, Device, StructureDefinition,
AuditEvent. Every route declares its policy; every read of patient data goes through ``caller.access``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from homediag import bodies, bundles, enrolment
from homediag.errors import BadRequest, NotFound
from homediag.fhir_profiles import operation_outcome, validate
from homediag.fhir_profiles.profiles import PROFILES
from homediag.fhir_profiles.publish import published_structure_definition
from homediag.search_params import parse_count, parse_observation_query, parse_reference

from .capability import capability_statement
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
    enforce,
)
from .responses import FhirResponse

router = APIRouter(prefix="/fhir", tags=["fhir"])

Public = Annotated[Caller, Depends(enforce(PUBLIC))]
AnyUser = Annotated[Caller, Depends(enforce(ANY_USER))]
ClinicalReader = Annotated[Caller, Depends(enforce(CLINICAL_READ))]
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
def metadata(base: BaseDep, _caller: Public) -> FhirResponse:
    return FhirResponse(capability_statement(base))


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


@router.get("/Observation", summary="Search Observations the caller may see")
def search_observations(request: Request, rt: RuntimeDep, caller: ClinicalReader, base: BaseDep) -> FhirResponse:
    items = list(request.query_params.multi_items())
    query = parse_observation_query(
        items, rt.local_zone, rt.settings.default_page_size, rt.settings.max_page_size, rt.settings.max_search_values
    )
    return FhirResponse(caller.access.search_observations(caller.user, query, base, items, caller.purpose))


@router.get("/Observation/{observation_id}", summary="Read an Observation")
def read_observation(observation_id: str, caller: ClinicalReader) -> FhirResponse:
    return FhirResponse(caller.access.read_observation(caller.user, observation_id, caller.purpose))


# -- Patient ---------------------------------------------------------------------------------
@router.post("/Patient", summary="Enrol a patient (admin)")
async def create_patient(request: Request, rt: RuntimeDep, caller: AdminWriter, base: BaseDep) -> FhirResponse:
    resource = await _resource(request)
    enrolled = enrolment.enrol_patient(rt, caller.user, resource)
    body = {"resourceType": "Patient", "id": enrolled.patient.id, "active": enrolled.patient.active}
    headers = {"Location": f"{base}/Patient/{enrolled.patient.id}"}
    if enrolled.warnings:
        headers["X-Warning"] = "; ".join(enrolled.warnings)
    return FhirResponse(body, status_code=201 if enrolled.created else 200, headers=headers)


@router.get("/Patient/{patient_id}", summary="Read a patient (identity for a treating clinician only)")
def read_patient(patient_id: str, caller: PatientReader) -> FhirResponse:
    """Identity (CPR, name) is disclosed to a treating clinician only with an ``X-Reidentification-Reason``
    header, and audited as a re-identification."""
    patient = caller.access.read_patient(caller.user, patient_id, purpose=caller.purpose, reason=caller.reason)
    return FhirResponse(patient)


# -- Consent ---------------------------------------------------------------------------------
@router.post("/Consent", summary="Record a consent (admin)")
async def create_consent(request: Request, rt: RuntimeDep, caller: AdminWriter, base: BaseDep) -> FhirResponse:
    resource = await _resource(request)
    stored = enrolment.record_consent(rt, caller.user, resource)
    return FhirResponse(stored, status_code=201, headers={"Location": f"{base}/Consent/{stored['id']}/_history/1"})


@router.put("/Consent/{consent_id}", summary="Update a consent, e.g. set it inactive to withdraw (admin)")
async def update_consent(consent_id: str, request: Request, rt: RuntimeDep, caller: AdminWriter) -> FhirResponse:
    resource = await _resource(request)
    return FhirResponse(enrolment.record_consent(rt, caller.user, resource, consent_id))


@router.get("/Consent/{consent_id}", summary="Read a consent (admin)")
def read_consent(consent_id: str, caller: AdminReader) -> FhirResponse:
    return FhirResponse(caller.access.read_consent(caller.user, consent_id))


@router.get("/Consent/{consent_id}/_history", summary="Every version of a consent (admin)")
def consent_history(consent_id: str, caller: AdminReader, base: BaseDep) -> FhirResponse:
    return FhirResponse(bundles.history(base, caller.access.consent_history(caller.user, consent_id)))


@router.get("/Consent", summary="Search consents by patient (admin)")
def search_consents(request: Request, caller: AdminReader, base: BaseDep) -> FhirResponse:
    patient_id = None
    for name, value in _only(request, ("patient",)):
        patient_id = parse_reference(value, "Patient", name)
    return FhirResponse(bundles.searchset(base, caller.access.search_consents(caller.user, patient_id)))


# -- Device ----------------------------------------------------------------------------------
@router.get("/Device/{device_id}", summary="Read a device (a clinician: of a patient it may see; admin)")
def read_device(device_id: str, caller: DeviceReader) -> FhirResponse:
    return FhirResponse(caller.access.read_device(caller.user, device_id, caller.purpose))


# -- StructureDefinition ---------------------------------------------------------------------
@router.get("/StructureDefinition/{profile_id}", summary="A published profile (no token needed)")
def read_structure_definition(profile_id: str, _caller: Public) -> FhirResponse:
    sd = published_structure_definition(profile_id)
    if sd is None:
        raise NotFound(f"StructureDefinition/{profile_id} is not known; see GET /fhir/StructureDefinition")
    return FhirResponse(sd)


@router.get("/StructureDefinition", summary="All published profiles (no token needed)")
def list_structure_definitions(base: BaseDep, _caller: Public) -> FhirResponse:
    return FhirResponse(bundles.searchset(base, [published_structure_definition(p.id) for p in PROFILES.values()]))


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
    bundle = bundles.searchset(base, page.events, total=page.total, links=links)
    return FhirResponse(bundle)
