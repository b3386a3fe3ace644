"""``/admin``: what an administrator manages besides patients and consents (those are FHIR: ``POST
/fhir/Patient``, ``POST|PUT /fhir/Consent``): care teams and their members and patients, gateways and
their patients and devices, users and their tokens. The same rules as the command line (``homediag
careteams|gateways|users``), because both call ``homediag.care`` and ``homediag.users``; every change is
audited, and the lists are read through the access layer (they name the pilot's patients)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from homediag import care, users
from homediag.clock import utcnow
from homediag.errors import BadRequest, NotFound
from homediag.settings import get_settings

from .policy import ADMIN_READ, ADMIN_WRITE, Caller, enforce
from .priority import ReadRoute

# GETs on the read threads (api/priority.py)
router = APIRouter(prefix="/admin", tags=["administration"], route_class=ReadRoute)

Reader = Annotated[Caller, Depends(enforce(ADMIN_READ))]
Writer = Annotated[Caller, Depends(enforce(ADMIN_WRITE))]


class NewTeam(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="the team's name")
    pilot: str | None = Field(default=None, max_length=100, description="the pilot (default HOMEDIAG_PILOT)")


class Member(BaseModel):
    user: str = Field(min_length=1, max_length=200, description="a clinician's user id, or oidc:<sub>")


class PatientRef(BaseModel):
    patient: str = Field(min_length=1, max_length=64, description="the patient's id (Patient.id)")


class DeviceRef(BaseModel):
    device: str = Field(min_length=1, max_length=300, description="serial, Bluetooth address, PHD identifier or *")


class NewUser(BaseModel):
    role: str = Field(description="clinician, gateway, admin, evaluator or vendor")
    name: str = Field(min_length=1, max_length=200)
    organisation: str | None = Field(default=None, max_length=200, description="for vendors, the device maker")
    expires_days: int | None = Field(default=None, ge=1, le=3650, description="the token expires after this")


@router.get("/care-teams", summary="Care teams with their members and patients")
def list_teams(caller: Reader) -> list[dict[str, Any]]:
    return caller.access.care_teams(caller.user)


@router.post("/care-teams", status_code=201, summary="Create a care team")
def create_team(body: NewTeam, caller: Writer) -> dict[str, Any]:
    team = caller.change(care.create_team, body.name, body.pilot or get_settings().pilot)
    return {"id": team.id, "name": team.name, "pilot": team.pilot, "members": [], "patients": []}


@router.post("/care-teams/{team_id}/members", summary="Put a clinician on a care team")
def add_member(team_id: str, body: Member, caller: Writer) -> dict[str, str]:
    caller.change(care.add_member, team_id, body.user)
    return {"team": team_id, "member": body.user}


@router.delete("/care-teams/{team_id}/members/{user_id}", status_code=204, summary="Take a clinician off a team")
def remove_member(team_id: str, user_id: str, caller: Writer) -> None:
    caller.change(care.remove_member, team_id, user_id)


@router.post("/care-teams/{team_id}/patients", summary="Put a patient in a care team's care")
def add_patient(team_id: str, body: PatientRef, caller: Writer) -> dict[str, str]:
    caller.change(care.add_patient, team_id, body.patient)
    return {"team": team_id, "patient": body.patient}


@router.delete("/care-teams/{team_id}/patients/{patient_id}", status_code=204, summary="Take a patient off a team")
def remove_patient(team_id: str, patient_id: str, caller: Writer) -> None:
    caller.change(care.remove_patient, team_id, patient_id)


@router.get("/gateways", summary="Gateways with their enrolled patients and allowed devices")
def list_gateways(caller: Reader) -> list[dict[str, Any]]:
    return caller.access.gateways(caller.user)


@router.post("/gateways/{gateway_id}/patients", summary="Enrol a patient on a gateway")
def assign_gateway(gateway_id: str, body: PatientRef, caller: Writer) -> dict[str, str]:
    caller.change(care.assign_gateway, gateway_id, body.patient)
    return {"gateway": gateway_id, "patient": body.patient}


@router.delete("/gateways/{gateway_id}/patients/{patient_id}", status_code=204, summary="Take a patient off a gateway")
def unassign_gateway(gateway_id: str, patient_id: str, caller: Writer) -> None:
    caller.change(care.unassign_gateway, gateway_id, patient_id)


@router.post("/gateways/{gateway_id}/devices", summary="Let a gateway upload from a device")
def allow_device(gateway_id: str, body: DeviceRef, caller: Writer) -> dict[str, str]:
    caller.change(care.allow_device, gateway_id, body.device)
    return {"gateway": gateway_id, "device": body.device.strip()}


@router.delete("/gateways/{gateway_id}/devices", status_code=204, summary="Stop a gateway uploading from a device")
def disallow_device(
    gateway_id: str, caller: Writer, device: Annotated[str, Query(min_length=1, max_length=300)]
) -> None:
    caller.change(care.disallow_device, gateway_id, device)


@router.get("/users", summary="Users and gateways: id, role, organisation, name, token state")
def list_users(caller: Reader) -> list[dict[str, Any]]:
    with caller.access.rt.sessions() as session:
        return [vars(u) for u in users.list_users(session)]


@router.post("/users", status_code=201, summary="Create a user or gateway; its token is in this answer only")
def add_user(body: NewUser, caller: Writer) -> dict[str, Any]:
    if body.role not in users.ROLES:
        raise BadRequest(f"role must be one of {', '.join(users.ROLES)}, not {body.role!r}", expression="role")
    expires_at = utcnow() + timedelta(days=body.expires_days) if body.expires_days is not None else None
    user, token = caller.change(
        users.add_user, name=body.name, role=body.role, organisation=body.organisation, expires_at=expires_at
    )
    return {"id": user.id, "role": user.role, "name": user.name, "organisation": user.organisation, "token": token}


@router.post("/users/{user_id}/revoke", summary="Revoke a user's token: it stops working on the next request")
def revoke_user(user_id: str, caller: Writer) -> dict[str, str]:
    if not caller.change(users.revoke, user_id):
        raise NotFound(f"no user {user_id!r}")
    return {"id": user_id, "state": "revoked"}
