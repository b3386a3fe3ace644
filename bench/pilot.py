"""Users, enrolment and consent: users made directly, patients and consents through the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from homediag.consent import treatment_consent
from homediag.identity import CPR_SYSTEM
from homediag.runtime import Runtime
from homediag.synthetic import SyntheticPatient
from homediag.users import create_user

from .client import TestClient

ROLES = ("admin", "clinician", "gateway")


@dataclass(frozen=True)
class Pilot:
    tokens: dict[str, str]
    patient_ids: list[str]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_users(rt: Runtime) -> dict[str, str]:
    with rt.sessions.begin() as session:
        return {role: create_user(session, name=f"bench {role} (synthetic)", role=role, organisation="Nykøbing F. Sygehus")[1] for role in ROLES}


def enrol(client: TestClient, rt: Runtime, people: list[SyntheticPatient], consent_from: date) -> Pilot:
    """Enrol every person (POST /fhir/Patient) with a treatment consent from ``consent_from`` (POST /fhir/Consent)."""
    tokens = make_users(rt)
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    ids = []
    for person in people:
        enrolled = client.post("/fhir/Patient", headers=admin, json={
            "resourceType": "Patient",
            "identifier": [{"system": CPR_SYSTEM, "value": person.cpr}],
            "name": [{"family": person.family, "given": [person.given]}],
        })
        enrolled.raise_for_status()
        patient_id = str(enrolled.json()["id"])
        client.post("/fhir/Consent", headers=admin, json=treatment_consent(f"Patient/{patient_id}", start=consent_from)).raise_for_status()
        ids.append(patient_id)
    return Pilot(tokens, ids)
