"""Relations that narrow access beyond consent: care teams, and the patients enrolled on a gateway.

A clinician reads only patients on a care team it is a member of (and only while consent permits);
a gateway uploads only for patients enrolled on it, and only from devices allowed on it. Both are set by
an administrator (CLI ``homediag careteams ...`` and ``homediag gateways assign``); every change is audited.
"""

from __future__ import annotations

import secrets

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from homediag.errors import NotFound

from . import audit
from .clock import utcnow
from .keys import KeyRing
from .store import models as m
from .users import Principal


class Unknown(NotFound, LookupError):
    """A team, patient or user that does not exist; the message says which."""


def _patient(session: Session, patient_id: str) -> m.Patient:
    patient = session.execute(select(m.Patient).where(m.Patient.id == patient_id)).scalar_one_or_none()
    if patient is None:
        raise Unknown(f"no enrolled patient {patient_id!r}")
    return patient


def _team(session: Session, team_id: str) -> m.CareTeam:
    team = session.get(m.CareTeam, team_id)
    if team is None:
        raise Unknown(f"no care team {team_id!r}")
    return team


def create_team(session: Session, keys: KeyRing, actor: Principal, name: str, pilot: str) -> m.CareTeam:
    team = m.CareTeam(id=f"team-{secrets.token_hex(4)}", name=name, pilot=pilot, created_at=utcnow())
    session.add(team)
    session.flush()
    audit.append(
        session,
        keys,
        [audit.Entry(actor.id, actor.role, "care-team-create", "done", entity=f"care-team/{team.id}", detail=name)],
    )
    return team


def add_member(session: Session, keys: KeyRing, actor: Principal, team_id: str, user_id: str) -> None:
    """Put a clinician on a team: an API user id, or ``oidc:<sub>`` for a person of the identity provider."""
    _team(session, team_id)
    if not user_id.startswith("oidc:"):
        user = session.get(m.User, user_id)
        if user is None or user.role != "clinician":
            raise Unknown(
                f"no clinician {user_id!r} (give an API user id, or oidc:<sub> for a person of the identity provider)"
            )
    if session.get(m.CareTeamMember, (team_id, user_id)) is None:
        session.add(m.CareTeamMember(care_team_id=team_id, user_id=user_id))
    audit.append(
        session,
        keys,
        [audit.Entry(actor.id, actor.role, "care-team-member", "done", entity=f"care-team/{team_id}", detail=user_id)],
    )


def add_patient(session: Session, keys: KeyRing, actor: Principal, team_id: str, patient_id: str) -> None:
    _team(session, team_id)
    patient = _patient(session, patient_id)
    if session.get(m.CareTeamPatient, (team_id, patient.patient_key)) is None:
        session.add(m.CareTeamPatient(care_team_id=team_id, patient_key=patient.patient_key))
    audit.append(
        session,
        keys,
        [
            audit.Entry(
                actor.id,
                actor.role,
                "care-team-patient",
                "done",
                patient_key=patient.patient_key,
                entity=f"care-team/{team_id}",
            )
        ],
    )


def assign_gateway(session: Session, keys: KeyRing, actor: Principal, gateway_id: str, patient_id: str) -> None:
    """Enrol a patient on a gateway: its uploads for that patient are accepted from then on."""
    gateway = session.get(m.User, gateway_id)
    if gateway is None or gateway.role != "gateway":
        raise Unknown(f"no gateway {gateway_id!r}")
    patient = _patient(session, patient_id)
    if session.get(m.GatewayPatient, (gateway_id, patient.patient_key)) is None:
        session.add(m.GatewayPatient(gateway_id=gateway_id, patient_key=patient.patient_key, assigned_at=utcnow()))
    audit.append(
        session,
        keys,
        [
            audit.Entry(
                actor.id,
                actor.role,
                "gateway-assign",
                "done",
                patient_key=patient.patient_key,
                entity=f"gateway/{gateway_id}",
            )
        ],
    )


ANY_DEVICE = "*"


def allow_device(
    session: Session,
    keys: KeyRing,
    actor: Principal,
    gateway_id: str,
    serial: str,
    *,
    patient_id: str | None = None,
    vendor: str | None = None,
) -> None:
    """Let a gateway upload from a device (its serial, Bluetooth address or PHD identifier; ``*``: any device).
    ``patient_id``: the patient the device is enrolled for (its readings for another patient are refused);
    ``vendor``: the organisation the device belongs to (its uploads show in that vendor's upload log)."""
    gateway = session.get(m.User, gateway_id)
    if gateway is None or gateway.role != "gateway":
        raise Unknown(f"no gateway {gateway_id!r}")
    serial = serial.strip()
    if not serial:
        raise Unknown("a device is named by its serial, address or identifier (or * for any device)")
    if serial == ANY_DEVICE and (patient_id or vendor):
        raise Unknown("'*' stands for any device: it cannot be bound to a patient or a vendor; name the device")
    patient_key = _patient(session, patient_id).patient_key if patient_id else None
    row = session.get(m.GatewayDevice, (gateway_id, serial))
    if row is None:
        row = m.GatewayDevice(gateway_id=gateway_id, serial=serial, assigned_at=utcnow())
        session.add(row)
    row.patient_key = patient_key or row.patient_key
    row.vendor = (vendor.strip()[:200] if vendor else None) or row.vendor
    audit.append(
        session,
        keys,
        [
            audit.Entry(
                actor.id,
                actor.role,
                "gateway-device",
                "done",
                patient_key=patient_key,
                entity=f"gateway/{gateway_id}",
                detail=serial if not vendor else f"{serial} ({vendor})",
            )
        ],
    )


def registrations(session: Session, gateway_id: str, names: list[str]) -> list[m.GatewayDevice]:
    """The gateway's registrations of a device known by any of ``names`` (not ``*``)."""
    wanted = [n for n in names if n and n != ANY_DEVICE]
    if not wanted:
        return []
    query = select(m.GatewayDevice).where(m.GatewayDevice.gateway_id == gateway_id, m.GatewayDevice.serial.in_(wanted))
    return list(session.scalars(query))


def registered_vendor(session: Session, gateway_id: str, names: list[str]) -> str | None:
    """The vendor the device's registration on this gateway names (None: none, or conflicting ones)."""
    vendors = {r.vendor for r in registrations(session, gateway_id, names) if r.vendor}
    return vendors.pop() if len(vendors) == 1 else None


def bound_elsewhere(session: Session, gateway_id: str, names: list[str], patient_key: str) -> bool:
    """Whether the device is enrolled (on this gateway) for a patient other than ``patient_key``."""
    bound = {r.patient_key for r in registrations(session, gateway_id, names) if r.patient_key}
    return bool(bound) and patient_key not in bound


def gateway_may_use(session: Session, gateway_id: str, names: list[str]) -> bool:
    """Whether the gateway may upload from a device known by any of ``names`` (serial, address, identifiers)."""
    wanted = [ANY_DEVICE, *(n for n in names if n)]
    return (
        session.execute(
            select(m.GatewayDevice.serial)
            .where(m.GatewayDevice.gateway_id == gateway_id, m.GatewayDevice.serial.in_(wanted))
            .limit(1)
        ).first()
        is not None
    )


def admit(
    session: Session,
    keys: KeyRing,
    actor: Principal,
    patient_id: str,
    *,
    team: str | None = None,
    gateway: str | None = None,
) -> None:
    """Put an enrolled patient in a care team's care and/or enrol it on a gateway."""
    if team:
        add_patient(session, keys, actor, team, patient_id)
    if gateway:
        assign_gateway(session, keys, actor, gateway, patient_id)


def team_patient_keys(user_id: str) -> Select[tuple[str]]:
    """The patient keys on the care teams ``user_id`` is a member of (a subquery for the access layer)."""
    return (
        select(m.CareTeamPatient.patient_key)
        .join(m.CareTeamMember, m.CareTeamMember.care_team_id == m.CareTeamPatient.care_team_id)
        .where(m.CareTeamMember.user_id == user_id)
    )


def on_care_team(session: Session, user_id: str, patient_key: str) -> bool:
    return (
        session.execute(team_patient_keys(user_id).where(m.CareTeamPatient.patient_key == patient_key).limit(1)).first()
        is not None
    )


def gateway_may_send(session: Session, gateway_id: str, patient_key: str) -> bool:
    return session.get(m.GatewayPatient, (gateway_id, patient_key)) is not None


# -- undoing a relation (a clinician leaves a team, a patient leaves a team's care or a gateway) ----------------
def _removed(session: Session, keys: KeyRing, actor: Principal, action: str, entity: str, **fields: str | None) -> None:
    audit.append(session, keys, [audit.Entry(actor.id, actor.role, action, "done", entity=entity, **fields)])


def remove_member(session: Session, keys: KeyRing, actor: Principal, team_id: str, user_id: str) -> None:
    """Take a clinician off a team: it stops reading the team's patients on its next request."""
    _team(session, team_id)
    row = session.get(m.CareTeamMember, (team_id, user_id))
    if row is None:
        raise Unknown(f"{user_id!r} is not on care team {team_id!r}")
    session.delete(row)
    _removed(session, keys, actor, "care-team-member-remove", f"care-team/{team_id}", detail=user_id)


def remove_patient(session: Session, keys: KeyRing, actor: Principal, team_id: str, patient_id: str) -> None:
    """Take a patient out of a team's care (consent and readings are kept)."""
    _team(session, team_id)
    patient = _patient(session, patient_id)
    row = session.get(m.CareTeamPatient, (team_id, patient.patient_key))
    if row is None:
        raise Unknown(f"Patient/{patient_id} is not in the care of {team_id!r}")
    session.delete(row)
    _removed(session, keys, actor, "care-team-patient-remove", f"care-team/{team_id}", patient_key=patient.patient_key)


def unassign_gateway(session: Session, keys: KeyRing, actor: Principal, gateway_id: str, patient_id: str) -> None:
    """Take a patient off a gateway: its further uploads for the patient are refused (and kept in the log)."""
    patient = _patient(session, patient_id)
    row = session.get(m.GatewayPatient, (gateway_id, patient.patient_key))
    if row is None:
        raise Unknown(f"Patient/{patient_id} is not enrolled on gateway {gateway_id!r}")
    session.delete(row)
    _removed(session, keys, actor, "gateway-unassign", f"gateway/{gateway_id}", patient_key=patient.patient_key)


def disallow_device(session: Session, keys: KeyRing, actor: Principal, gateway_id: str, serial: str) -> None:
    """Stop a gateway uploading from a device (or, for ``*``, from devices not named one by one)."""
    row = session.get(m.GatewayDevice, (gateway_id, serial.strip()))
    if row is None:
        raise Unknown(f"gateway {gateway_id!r} has no device {serial.strip()!r} allowed")
    session.delete(row)
    _removed(session, keys, actor, "gateway-device-remove", f"gateway/{gateway_id}", detail=serial.strip())
