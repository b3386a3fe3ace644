"""The administration pages under ``/app/admin`` (admin role): enrolment, consents, care teams, gateways,
users. Reads go through the access layer (``web-admin``, audited); every change is a CSRF-checked form
(``web-admin-write``) that calls the same service functions as the command line and the HTTP API
(``homediag.enrolment``, ``homediag.care``, ``homediag.users``), so the same rules and the same audit
apply. A CPR number is sent once, into the vault, and never shown back: the pages name a patient by id."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from homediag import care, enrolment, users
from homediag.api.policy import WEB_ADMIN, WEB_ADMIN_WRITE, Caller, enforce
from homediag.api.priority import ReadRoute
from homediag.clock import utcnow
from homediag.errors import BadRequest, NotFound
from homediag.identity import CPR_SYSTEM
from homediag.runtime import Runtime

from . import sessions
from .admin_view import PURPOSES, consent_from_form, consent_rows
from .render import render

# GETs on the read threads (api/priority.py)
router = APIRouter(prefix="/app/admin", include_in_schema=False, route_class=ReadRoute)
Admin = Annotated[Caller, Depends(enforce(WEB_ADMIN))]
AdminWrite = Annotated[Caller, Depends(enforce(WEB_ADMIN_WRITE))]
Csrf = Annotated[str | None, Form()]


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _field(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise BadRequest(f"the field '{what}' is empty")
    return text


# -- patients and consents ---------------------------------------------------------------------------
@router.get("/patients")
def patients(request: Request, caller: Admin) -> Response:
    return render(request, "admin_patients.html", patients=caller.access.enrolled_patients(caller.user))


@router.post("/patients")
def enrol(
    request: Request,
    caller: AdminWrite,
    csrf: Csrf = None,
    cpr: Annotated[str | None, Form()] = None,
    given: Annotated[str | None, Form()] = None,
    family: Annotated[str | None, Form()] = None,
) -> Response:
    """Enrol a patient: the CPR number and name into the vault (``enrolment.enrol_patient``, as POST /fhir/Patient)."""
    rt = _rt(request)
    sessions.check_csrf(request, rt, csrf)
    name: dict[str, Any] = {}
    if (family or "").strip():
        name["family"] = family.strip()  # type: ignore[union-attr]
    if (given or "").strip():
        name["given"] = [given.strip()]  # type: ignore[union-attr]
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": CPR_SYSTEM, "value": _field(cpr, "CPR")}],
    }
    if name:
        resource["name"] = [name]
    enrolled = enrolment.enrol_patient(rt, caller.user, resource)
    outcome = "new" if enrolled.created else "existing"
    return _redirect(f"/app/admin/patients/{enrolled.patient.id}?enrolled={outcome}")


@router.get("/patients/{patient_id}")
def patient(request: Request, patient_id: str, caller: Admin, enrolled: str | None = None) -> Response:
    """A patient's consents, each with its history, and the form to record a new one."""
    record = caller.access.read_patient(caller.user, patient_id)  # 404 for an unknown id (audited)
    current = caller.access.search_consents(caller.user, record["id"])
    histories = {c["id"]: caller.access.consent_history(caller.user, c["id"]) for c in current}
    return render(
        request,
        "admin_patient.html",
        patient=record,
        consents=consent_rows(current, histories),
        purposes=PURPOSES,
        enrolled=enrolled if enrolled in ("new", "existing") else None,
    )


@router.post("/patients/{patient_id}/consents")
def record_consent(
    request: Request,
    patient_id: str,
    caller: AdminWrite,
    csrf: Csrf = None,
    purpose: Annotated[list[str] | None, Form()] = None,
    start: Annotated[str | None, Form()] = None,
    end: Annotated[str | None, Form()] = None,
    data_from: Annotated[str | None, Form()] = None,
    data_to: Annotated[str | None, Form()] = None,
) -> Response:
    """Record a consent (``enrolment.record_consent``, as POST /fhir/Consent)."""
    rt = _rt(request)
    sessions.check_csrf(request, rt, csrf)
    resource = consent_from_form(patient_id, purpose or [], start, end, data_from, data_to)
    enrolment.record_consent(rt, caller.user, resource)
    return _redirect(f"/app/admin/patients/{quote(patient_id)}")


@router.post("/patients/{patient_id}/consents/{consent_id}/withdraw")
def withdraw_consent(
    request: Request,
    patient_id: str,
    consent_id: str,
    caller: AdminWrite,
    csrf: Csrf = None,
    version: Annotated[str | None, Form()] = None,
) -> Response:
    """Withdraw a consent: a new version with status inactive (as PUT /fhir/Consent); refused when the consent
    changed since the page was shown."""
    rt = _rt(request)
    sessions.check_csrf(request, rt, csrf)
    current = caller.access.read_consent(caller.user, consent_id)
    if (current.get("patient") or {}).get("reference") != f"Patient/{patient_id}":
        raise NotFound(f"Patient/{patient_id} has no consent {consent_id}")

    def unchanged(now: dict[str, Any]) -> None:
        if str((now.get("meta") or {}).get("versionId")) != (version or ""):
            raise BadRequest("the consent changed since the page was shown; reload the page and try again")

    changed = {k: v for k, v in current.items() if k != "meta"}
    enrolment.record_consent(rt, caller.user, {**changed, "status": "inactive"}, consent_id, if_match=unchanged)
    return _redirect(f"/app/admin/patients/{quote(patient_id)}")


# -- care teams ----------------------------------------------------------------------------------------
@router.get("/care-teams")
def care_teams(request: Request, caller: Admin) -> Response:
    return render(request, "admin_teams.html", teams=caller.access.care_teams(caller.user))


@router.post("/care-teams")
def create_team(
    request: Request, caller: AdminWrite, csrf: Csrf = None, name: Annotated[str | None, Form()] = None
) -> Response:
    rt = _rt(request)
    sessions.check_csrf(request, rt, csrf)
    caller.change(care.create_team, _field(name, "name")[:200], rt.settings.pilot)
    return _redirect("/app/admin/care-teams")


@router.post("/care-teams/{team_id}/members")
def team_member(
    request: Request,
    team_id: str,
    caller: AdminWrite,
    csrf: Csrf = None,
    user: Annotated[str | None, Form()] = None,
    remove: Annotated[str | None, Form()] = None,
) -> Response:
    """Put a clinician on the team, or (``remove``) take one off."""
    sessions.check_csrf(request, _rt(request), csrf)
    caller.change(care.remove_member if remove else care.add_member, team_id, _field(user, "user"))
    return _redirect("/app/admin/care-teams")


@router.post("/care-teams/{team_id}/patients")
def team_patient(
    request: Request,
    team_id: str,
    caller: AdminWrite,
    csrf: Csrf = None,
    patient: Annotated[str | None, Form()] = None,
    remove: Annotated[str | None, Form()] = None,
) -> Response:
    """Put a patient in the team's care, or (``remove``) take one out."""
    sessions.check_csrf(request, _rt(request), csrf)
    caller.change(care.remove_patient if remove else care.add_patient, team_id, _field(patient, "patient"))
    return _redirect("/app/admin/care-teams")


# -- gateways ----------------------------------------------------------------------------------------
@router.get("/gateways")
def gateways(request: Request, caller: Admin) -> Response:
    return render(request, "admin_gateways.html", gateways=caller.access.gateways(caller.user))


@router.post("/gateways/{gateway_id}/patients")
def gateway_patient(
    request: Request,
    gateway_id: str,
    caller: AdminWrite,
    csrf: Csrf = None,
    patient: Annotated[str | None, Form()] = None,
    remove: Annotated[str | None, Form()] = None,
) -> Response:
    """Enrol a patient on the gateway, or (``remove``) take one off."""
    sessions.check_csrf(request, _rt(request), csrf)
    action = care.unassign_gateway if remove else care.assign_gateway
    caller.change(action, gateway_id, _field(patient, "patient"))
    return _redirect("/app/admin/gateways")


@router.post("/gateways/{gateway_id}/devices")
def gateway_device(
    request: Request,
    gateway_id: str,
    caller: AdminWrite,
    csrf: Csrf = None,
    device: Annotated[str | None, Form()] = None,
    remove: Annotated[str | None, Form()] = None,
) -> Response:
    """Let the gateway upload from a device, or (``remove``) stop it."""
    sessions.check_csrf(request, _rt(request), csrf)
    action = care.disallow_device if remove else care.allow_device
    caller.change(action, gateway_id, _field(device, "device")[:300])
    return _redirect("/app/admin/gateways")


# -- users -------------------------------------------------------------------------------------------
def _users_page(request: Request, caller: Caller, created: dict[str, Any] | None = None) -> Response:
    with caller.access.rt.sessions() as session:
        found = users.list_users(session)
    return render(request, "admin_users.html", users=found, roles=users.ROLES, created=created)


@router.get("/users")
def user_list(request: Request, caller: Admin) -> Response:
    return _users_page(request, caller)


@router.post("/users")
def create_user(
    request: Request,
    caller: AdminWrite,
    csrf: Csrf = None,
    role: Annotated[str | None, Form()] = None,
    name: Annotated[str | None, Form()] = None,
    organisation: Annotated[str | None, Form()] = None,
    expires_days: Annotated[str | None, Form()] = None,
) -> Response:
    """Create a user or gateway; the result page shows its token, this once (it is stored only hashed)."""
    sessions.check_csrf(request, _rt(request), csrf)
    if role not in users.ROLES:
        raise BadRequest(f"the role is one of {', '.join(users.ROLES)}")
    days = (expires_days or "").strip()
    if days and (not (days.isascii() and days.isdigit()) or not 1 <= int(days) <= 3650):
        raise BadRequest("the token's lifetime is a whole number of days from 1 to 3650, or empty")
    user, token = caller.change(
        users.add_user,
        name=_field(name, "name")[:200],
        role=role,
        organisation=(organisation or "").strip()[:200] or None,
        expires_at=utcnow() + timedelta(days=int(days)) if days else None,
    )
    created = {"id": user.id, "role": user.role, "name": user.name, "token": token}
    return _users_page(request, caller, created)


@router.post("/users/{user_id}/revoke")
def revoke_user(request: Request, user_id: str, caller: AdminWrite, csrf: Csrf = None) -> Response:
    sessions.check_csrf(request, _rt(request), csrf)
    if not caller.change(users.revoke, user_id):
        raise NotFound(f"no user {user_id!r}")
    return _redirect("/app/admin/users")
