"""The pilot's relations as an administrator sees them: care teams (members, patients) and gateways
(patients, devices). They name which patients are in the pilot, so each read is admin-only and audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from homediag.clock import from_store
from homediag.errors import Forbidden
from homediag.store import models as m
from homediag.users import Principal

from .decisions import Decisions


class AdministrationReads(Decisions):
    def _administrator(self, principal: Principal, what: str) -> None:
        if principal.role != "admin":
            raise Forbidden(f"the role '{principal.role}' may not read {what}")

    def care_teams(self, principal: Principal) -> list[dict[str, Any]]:
        """Every care team with its members and the ids of the patients in its care."""
        self._administrator(principal, "care teams")
        with self.rt.sessions.begin() as session:
            teams = session.execute(select(m.CareTeam).order_by(m.CareTeam.created_at, m.CareTeam.id)).scalars().all()
            members = session.execute(select(m.CareTeamMember.care_team_id, m.CareTeamMember.user_id)).all()
            patients = session.execute(
                select(m.CareTeamPatient.care_team_id, m.Patient.id).join(
                    m.Patient, m.Patient.patient_key == m.CareTeamPatient.patient_key
                )
            ).all()
            self._audit(session, principal, "care-team-read", "permit", detail=f"{len(teams)} team(s)")
            return [
                {
                    "id": team.id,
                    "name": team.name,
                    "pilot": team.pilot,
                    "members": sorted(user for tid, user in members if tid == team.id),
                    "patients": sorted(pid for tid, pid in patients if tid == team.id),
                }
                for team in teams
            ]

    def gateways(self, principal: Principal) -> list[dict[str, Any]]:
        """Every gateway with the ids of the patients enrolled on it and the devices it may upload from."""
        self._administrator(principal, "gateways")
        with self.rt.sessions.begin() as session:
            gateways = (
                session.execute(select(m.User).where(m.User.role == "gateway").order_by(m.User.created_at))
                .scalars()
                .all()
            )
            patients = session.execute(
                select(m.GatewayPatient.gateway_id, m.Patient.id).join(
                    m.Patient, m.Patient.patient_key == m.GatewayPatient.patient_key
                )
            ).all()
            devices = session.execute(select(m.GatewayDevice.gateway_id, m.GatewayDevice.serial)).all()
            self._audit(session, principal, "gateway-read", "permit", detail=f"{len(gateways)} gateway(s)")
            return [
                {
                    "id": gw.id,
                    "name": gw.name,
                    "patients": sorted(pid for gid, pid in patients if gid == gw.id),
                    "devices": sorted(serial for gid, serial in devices if gid == gw.id),
                }
                for gw in gateways
            ]

    def enrolled_patients(self, principal: Principal) -> list[dict[str, Any]]:
        """Every enrolled patient (id, enrolment time, active) with the status of each of its consents; no
        identity (an administrator's Patient read shows none either)."""
        self._administrator(principal, "the enrolled patients")
        with self.rt.sessions.begin() as session:
            patients = session.execute(
                select(m.Patient.id, m.Patient.patient_key, m.Patient.enrolled_at, m.Patient.active).order_by(
                    m.Patient.enrolled_at.desc(), m.Patient.id
                )
            ).all()
            consents = session.execute(select(m.Consent.patient_key, m.Consent.status)).all()
            self._audit(session, principal, "patient-list", "permit", detail=f"{len(patients)} patient(s)")
            return [
                {
                    "id": p.id,
                    "enrolled_at": from_store(p.enrolled_at),
                    "active": p.active,
                    "consents": sorted(status for pkey, status in consents if pkey == p.patient_key),
                }
                for p in patients
            ]
