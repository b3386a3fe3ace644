"""Users, enrolment and consent: users made directly, patients and consents through the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from homediag import care
from homediag.consent import treatment_consent
from homediag.identity import CPR_SYSTEM
from homediag.runtime import Runtime
from homediag.synthetic import SyntheticPatient
from homediag.users import Principal, create_user

from .client import TestClient

ROLES = ("admin", "clinician", "gateway")


@dataclass(frozen=True)
class Pilot:
    tokens: dict[str, str]
    patient_ids: list[str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


SETUP = Principal("bench-setup", "homediag bench", "admin", None)


def make_users(rt: Runtime) -> tuple[dict[str, str], dict[str, str], str]:
    """Tokens and user ids by role, and a care team with the clinician on it."""
    with rt.sessions.begin() as session:
        users = {
            role: create_user(session, name=f"bench {role} (synthetic)", role=role, organisation="Nykøbing F. Sygehus")
            for role in ROLES
        }
        team = care.create_team(session, rt.keys, SETUP, "bench team", rt.settings.pilot)
        care.add_member(session, rt.keys, SETUP, team.id, users["clinician"][0].id)
        care.allow_device(session, rt.keys, SETUP, users["gateway"][0].id, care.ANY_DEVICE)
    return {r: t for r, (_, t) in users.items()}, {r: u.id for r, (u, _) in users.items()}, team.id


def enrol(client: TestClient, rt: Runtime, people: list[SyntheticPatient], consent_from: date) -> Pilot:
    """Enrol every person (POST /fhir/Patient) with a treatment consent from ``consent_from`` (POST /fhir/Consent),
    in the clinician's care team and on the gateway."""
    tokens, user_ids, team = make_users(rt)
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    ids = []
    for person in people:
        enrolled = client.post(
            "/fhir/Patient",
            headers=admin,
            json={
                "resourceType": "Patient",
                "identifier": [{"system": CPR_SYSTEM, "value": person.cpr}],
                "name": [{"family": person.family, "given": [person.given]}],
            },
        )
        enrolled.raise_for_status()
        patient_id = str(enrolled.json()["id"])
        with rt.sessions.begin() as session:
            care.admit(session, rt.keys, SETUP, patient_id, team=team, gateway=user_ids["gateway"])
        client.post(
            "/fhir/Consent", headers=admin, json=treatment_consent(f"Patient/{patient_id}", start=consent_from)
        ).raise_for_status()
        ids.append(patient_id)
    return Pilot(tokens, ids)
