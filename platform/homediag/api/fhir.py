"""The FHIR API (base ``/fhir``): metadata, Observation, Patient, Consent, Device."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from homediag import enrolment
from homediag.access import AccessService, Forbidden, NotFound
from homediag.fhir_profiles import fhirjson, operation_outcome, validate
from homediag.fhir_profiles.profiles import PROFILES
from homediag.fhir_profiles.publish import published_structure_definition
from homediag.search_params import SearchError, parse_observation_query, parse_reference
from homediag.store import models as m
from homediag.users import Principal

from .capability import capability_statement
from .deps import BaseDep, PrincipalDep, RuntimeDep, require_role
from .responses import FhirError, FhirResponse

router = APIRouter(prefix="/fhir", tags=["fhir"])
AdminDep = Annotated[Principal, Depends(require_role("admin"))]


async def _resource(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        resource = fhirjson.loads(body)
    except ValueError as exc:
        raise FhirError(400, "structure", f"the body is not JSON: {exc}") from None
    if not isinstance(resource, dict) or "resourceType" not in resource:
        raise FhirError(400, "structure", "the body must be a FHIR resource (a JSON object with resourceType)")
    return resource


def purpose_of_use(request: Request) -> str | None:
    """The purpose of use the caller states (``X-Purpose-Of-Use: TREAT``, a v3-ActReason code); None: the role's own."""
    value = request.headers.get("x-purpose-of-use", "").strip()
    return value or None


def _invalid(exc: enrolment.Invalid) -> FhirError:
    return FhirError(422, "invalid", str(exc), issues=exc.issues)


@router.get("/metadata", summary="CapabilityStatement")
def metadata(base: BaseDep) -> FhirResponse:
    return FhirResponse(capability_statement(base))


# -- Observation -----------------------------------------------------------------------------
@router.post("/Observation/$validate", summary="Validate an Observation against the profiles; stores nothing")
async def validate_observation(request: Request, principal: PrincipalDep) -> FhirResponse:
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
            raise FhirError(
                400, "required", "a Parameters body needs exactly one 'resource' parameter", "Parameters.parameter"
            )
        resource = found[0]
    return FhirResponse(operation_outcome(validate(resource)))


@router.get("/Observation", summary="Search Observations the caller may see")
def search_observations(request: Request, rt: RuntimeDep, principal: PrincipalDep, base: BaseDep) -> FhirResponse:
    items = list(request.query_params.multi_items())
    try:
        query = parse_observation_query(items, rt.local_zone, rt.settings.default_page_size, rt.settings.max_page_size)
    except SearchError as exc:
        raise FhirError(400, "invalid", str(exc), exc.parameter) from None
    try:
        return FhirResponse(
            AccessService(rt).search_observations(principal, query, base, items, purpose_of_use(request))
        )
    except Forbidden as exc:
        raise FhirError(403, "forbidden", str(exc)) from None


@router.get("/Observation/{observation_id}", summary="Read an Observation")
def read_observation(observation_id: str, request: Request, rt: RuntimeDep, principal: PrincipalDep) -> FhirResponse:
    try:
        return FhirResponse(AccessService(rt).read_observation(principal, observation_id, purpose_of_use(request)))
    except Forbidden as exc:
        raise FhirError(403, "forbidden", str(exc)) from None
    except NotFound as exc:
        raise FhirError(404, "not-found", str(exc)) from None


# -- Patient ---------------------------------------------------------------------------------
@router.post("/Patient", summary="Enrol a patient (admin)")
async def create_patient(request: Request, rt: RuntimeDep, admin: AdminDep, base: BaseDep) -> FhirResponse:
    resource = await _resource(request)
    try:
        enrolled = enrolment.enrol_patient(rt, admin, resource)
    except enrolment.Invalid as exc:
        raise _invalid(exc) from None
    body = {"resourceType": "Patient", "id": enrolled.patient.id, "active": enrolled.patient.active}
    headers = {"Location": f"{base}/Patient/{enrolled.patient.id}"}
    if enrolled.warnings:
        headers["X-Warning"] = "; ".join(enrolled.warnings)
    return FhirResponse(body, status_code=201 if enrolled.created else 200, headers=headers)


@router.get("/Patient/{patient_id}", summary="Read a patient (identity for a treating clinician only)")
def read_patient(patient_id: str, request: Request, rt: RuntimeDep, principal: PrincipalDep) -> FhirResponse:
    """Identity (CPR, name) is disclosed to a treating clinician only with an ``X-Reidentification-Reason``
    header, and audited as a re-identification."""
    reason = request.headers.get("x-reidentification-reason", "").strip()[:200] or None
    try:
        return FhirResponse(
            AccessService(rt).read_patient(principal, patient_id, purpose=purpose_of_use(request), reason=reason)
        )
    except Forbidden as exc:
        raise FhirError(403, "forbidden", str(exc)) from None
    except NotFound as exc:
        raise FhirError(404, "not-found", str(exc)) from None


# -- Consent ---------------------------------------------------------------------------------
@router.post("/Consent", summary="Record a consent (admin)")
async def create_consent(request: Request, rt: RuntimeDep, admin: AdminDep, base: BaseDep) -> FhirResponse:
    resource = await _resource(request)
    try:
        stored = enrolment.record_consent(rt, admin, resource)
    except enrolment.Invalid as exc:
        raise _invalid(exc) from None
    return FhirResponse(stored, status_code=201, headers={"Location": f"{base}/Consent/{stored['id']}/_history/1"})


@router.put("/Consent/{consent_id}", summary="Update a consent, e.g. set it inactive to withdraw (admin)")
async def update_consent(consent_id: str, request: Request, rt: RuntimeDep, admin: AdminDep) -> FhirResponse:
    resource = await _resource(request)
    try:
        return FhirResponse(enrolment.record_consent(rt, admin, resource, consent_id))
    except enrolment.Invalid as exc:
        raise _invalid(exc) from None
    except enrolment.Missing as exc:
        raise FhirError(404, "not-found", str(exc)) from None


@router.get("/Consent/{consent_id}", summary="Read a consent (admin)")
def read_consent(consent_id: str, rt: RuntimeDep, admin: AdminDep) -> FhirResponse:
    try:
        return FhirResponse(enrolment.read_consent(rt, consent_id))
    except enrolment.Missing as exc:
        raise FhirError(404, "not-found", str(exc)) from None


@router.get("/Consent/{consent_id}/_history", summary="Every version of a consent (admin)")
def consent_history(consent_id: str, rt: RuntimeDep, admin: AdminDep, base: BaseDep) -> FhirResponse:
    try:
        versions = enrolment.consent_history(rt, consent_id)
    except enrolment.Missing as exc:
        raise FhirError(404, "not-found", str(exc)) from None
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "history",
            "total": len(versions),
            "entry": [
                {
                    "fullUrl": f"{base}/Consent/{consent_id}",
                    "resource": v,
                    "request": {"method": "POST", "url": "Consent"}
                    if v["meta"]["versionId"] == "1"
                    else {"method": "PUT", "url": f"Consent/{consent_id}"},
                    "response": {
                        "status": "201 Created" if v["meta"]["versionId"] == "1" else "200 OK",
                        "etag": f'W/"{v["meta"]["versionId"]}"',
                        "lastModified": v["meta"]["lastUpdated"],
                    },
                }
                for v in versions
            ],
        }
    )


@router.get("/Consent", summary="Search consents by patient (admin)")
def search_consents(request: Request, rt: RuntimeDep, admin: AdminDep, base: BaseDep) -> FhirResponse:
    patient_id = None
    for name, value in request.query_params.multi_items():
        if name not in ("patient",):
            raise FhirError(400, "invalid", f"unknown search parameter '{name}'; supported: patient", name)
        try:
            patient_id = parse_reference(value, "Patient", name)
        except SearchError as exc:
            raise FhirError(400, "invalid", str(exc), name) from None
    found = enrolment.consents_of(rt, patient_id)
    return FhirResponse(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [
                {"fullUrl": f"{base}/Consent/{c['id']}", "resource": c, "search": {"mode": "match"}} for c in found
            ],
        }
    )


# -- Device ----------------------------------------------------------------------------------
@router.get("/Device/{device_id}", summary="Read a device (clinician, admin)")
def read_device(
    device_id: str, rt: RuntimeDep, principal: Annotated[Principal, Depends(require_role("clinician", "admin"))]
) -> FhirResponse:
    with rt.sessions() as session:
        device = session.get(m.Device, device_id)
    if device is None:
        raise FhirError(404, "not-found", f"Device/{device_id} is not known")
    if device.resource:  # a Device a PHD gateway sent: the latest one, under our id
        return FhirResponse({**device.resource, "id": device.id})
    resource: dict[str, Any] = {"resourceType": "Device", "id": device.id}
    if device.manufacturer:
        resource["manufacturer"] = device.manufacturer
    if device.serial:
        resource["serialNumber"] = device.serial
    if device.model:
        resource["modelNumber"] = device.model
    if device.address:
        resource["identifier"] = [{"system": "urn:ietf:rfc:7042", "value": device.address}]
    return FhirResponse(resource)


# -- StructureDefinition ---------------------------------------------------------------------
@router.get("/StructureDefinition/{profile_id}", summary="A published profile (no token needed)")
def read_structure_definition(profile_id: str) -> FhirResponse:
    sd = published_structure_definition(profile_id)
    if sd is None:
        raise FhirError(
            404, "not-found", f"StructureDefinition/{profile_id} is not known; see GET /fhir/StructureDefinition"
        )
    return FhirResponse(sd)


@router.get("/StructureDefinition", summary="All published profiles (no token needed)")
def list_structure_definitions(base: BaseDep) -> FhirResponse:
    entries = []
    for profile in PROFILES.values():
        sd = published_structure_definition(profile.id)
        entries.append(
            {"fullUrl": f"{base}/StructureDefinition/{profile.id}", "resource": sd, "search": {"mode": "match"}}
        )
    return FhirResponse({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})


# -- AuditEvent ------------------------------------------------------------------------------
@router.get("/AuditEvent", summary="The audit log as AuditEvent resources (admin), newest first")
def search_audit_events(request: Request, rt: RuntimeDep, admin: AdminDep, base: BaseDep) -> FhirResponse:
    from sqlalchemy import func, select

    from homediag import audit
    from homediag.store import models as m

    count, offset, patient_id, action = 50, 0, None, None
    for name, value in request.query_params.multi_items():
        if name in ("_count", "_offset") and value.isdigit():
            count, offset = (min(int(value), 500), offset) if name == "_count" else (count, int(value))
        elif name == "patient":
            try:
                patient_id = parse_reference(value, "Patient", name)
            except SearchError as exc:
                raise FhirError(400, "invalid", str(exc), name) from None
        elif name == "type":
            action = value
        else:
            raise FhirError(
                400,
                "invalid",
                f"unknown or malformed search parameter '{name}'; supported: patient, type, _count, _offset",
                name,
            )
    with rt.sessions() as session:
        stmt = select(m.AuditEvent, m.Patient.id).outerjoin(
            m.Patient, m.Patient.patient_key == m.AuditEvent.patient_key
        )
        if patient_id is not None:
            stmt = stmt.where(m.Patient.id == patient_id)
        if action is not None:
            stmt = stmt.where(m.AuditEvent.action == action)
        total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
        rows = session.execute(stmt.order_by(m.AuditEvent.seq.desc()).offset(offset).limit(count)).all()
        entries = [
            {
                "fullUrl": f"{base}/AuditEvent/{row.seq}",
                "resource": audit.as_fhir(row, pid),
                "search": {"mode": "match"},
            }
            for row, pid in rows
        ]
    bundle: dict[str, object] = {"resourceType": "Bundle", "type": "searchset", "total": total, "entry": entries}
    if count and offset + count < total:
        bundle["link"] = [
            {"relation": "next", "url": str(request.url.include_query_params(_offset=offset + count, _count=count))}
        ]
    return FhirResponse(bundle)
