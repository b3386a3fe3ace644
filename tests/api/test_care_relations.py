"""Relations beyond consent: a clinician reads only its care teams' patients; a gateway uploads only
for the patients enrolled on it, from the devices allowed on it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import ADMIN
from sqlalchemy import select

from homediag import care
from homediag.store.models import AuditEvent, Upload
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import create_user


@pytest.fixture
def outsider(runtime):  # type: ignore[no-untyped-def]
    """A clinician on no care team, and a second gateway."""
    with runtime.sessions.begin() as session:
        doctor, doctor_token = create_user(session, name="Dr. Andetsted", role="clinician")
        tablet, tablet_token = create_user(session, name="tablet-other", role="gateway")
    return {
        "clinician": (doctor.id, {"Authorization": f"Bearer {doctor_token}"}),
        "gateway": (tablet.id, {"Authorization": f"Bearer {tablet_token}"}),
    }


def _reading(client, tokens, person, headers=None):  # type: ignore[no-untyped-def]
    taken = datetime.now(ZoneInfo("Europe/Copenhagen")).replace(microsecond=0) - timedelta(hours=1)
    return client.post(
        "/ingest",
        json=envelope(person, cuff_payload(random.Random(5), taken.replace(tzinfo=None)), taken),
        headers=headers or tokens.auth("gateway"),
    )


def test_a_clinician_reads_only_patients_of_its_care_teams(client, tokens, pilot, runtime, outsider) -> None:  # type: ignore[no-untyped-def]
    person = synthetic_patients(1, seed=51)[0]
    pid = pilot.enrol(person.cpr)
    pilot.consent(pid)
    sent = _reading(client, tokens, person)
    assert sent.status_code == 201
    observation = sent.json()["observations"][0]["id"]
    doctor_id, doctor = outsider["clinician"]

    assert (
        client.get("/fhir/Observation", params={"patient": pid}, headers=tokens.auth("clinician")).json()["total"] == 2
    )
    assert client.get("/fhir/Observation", params={"patient": pid}, headers=doctor).json()["total"] == 0
    assert client.get("/fhir/Observation", headers=doctor).json()["total"] == 0
    assert client.get(f"/fhir/Observation/{observation}", headers=doctor).status_code == 404
    assert (
        client.get(f"/fhir/Patient/{pid}", headers={**doctor, "X-Reidentification-Reason": "curious"}).status_code
        == 404
    )
    with runtime.sessions() as session:
        reasons = (
            session.execute(
                select(AuditEvent.detail).where(AuditEvent.actor == doctor_id, AuditEvent.outcome == "deny")
            )
            .scalars()
            .all()
        )
    assert reasons and all("care team" in r for r in reasons)

    with (
        runtime.sessions.begin() as session
    ):  # the administrator puts the doctor on the team: visible on the next request
        care.add_member(session, runtime.keys, ADMIN, tokens.team, doctor_id)
    assert client.get(f"/fhir/Observation/{observation}", headers=doctor).status_code == 200


def test_a_gateway_uploads_only_for_its_patients_from_its_devices(client, tokens, pilot, runtime, outsider) -> None:  # type: ignore[no-untyped-def]
    person = synthetic_patients(1, seed=52)[0]
    pid = pilot.enrol(person.cpr)
    tablet_id, tablet = outsider["gateway"]
    refused = _reading(client, tokens, person, tablet)
    assert refused.status_code == 422
    assert "not enrolled on this gateway" in refused.json()["issues"]["issue"][0]["diagnostics"]
    with runtime.sessions() as session:
        assert (
            session.execute(select(Upload.outcome).where(Upload.id == refused.json()["upload"])).scalar_one()
            == "rejected"
        )
    with runtime.sessions.begin() as session:
        care.assign_gateway(session, runtime.keys, ADMIN, tablet_id, pid)
    # enrolled on the gateway, but the cuff is not one the gateway may use
    foreign_device = _reading(client, tokens, person, tablet)
    assert foreign_device.status_code == 422
    assert "not allowed on this gateway" in foreign_device.json()["issues"]["issue"][0]["diagnostics"]
    with runtime.sessions.begin() as session:
        care.allow_device(session, runtime.keys, ADMIN, tablet_id, person.cuff_serial)
    assert _reading(client, tokens, person, tablet).status_code == 201
    other_cuff = synthetic_patients(2, seed=99)[1]  # same patient, another cuff: refused
    taken = datetime.now(ZoneInfo("Europe/Copenhagen")).replace(microsecond=0) - timedelta(hours=3)
    sent = envelope(person, cuff_payload(random.Random(6), taken.replace(tzinfo=None)), taken)
    sent["device"] = {**sent["device"], "serial": other_cuff.cuff_serial, "address": other_cuff.cuff_address}
    assert client.post("/ingest", json=sent, headers=tablet).status_code == 422


def test_relations_name_what_does_not_exist(runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    with runtime.sessions.begin() as session:
        with pytest.raises(care.Unknown, match="no care team"):
            care.add_patient(session, runtime.keys, ADMIN, "team-none", "p")
        with pytest.raises(care.Unknown, match="no enrolled patient"):
            care.add_patient(session, runtime.keys, ADMIN, tokens.team, "nobody")
        with pytest.raises(care.Unknown, match="no clinician"):
            care.add_member(session, runtime.keys, ADMIN, tokens.team, tokens.ids["gateway"])
        with pytest.raises(care.Unknown, match="no gateway"):
            care.assign_gateway(session, runtime.keys, ADMIN, tokens.ids["clinician"], "nobody")
        with pytest.raises(care.Unknown, match="no gateway"):
            care.allow_device(session, runtime.keys, ADMIN, tokens.ids["clinician"], "SYN-1")
        care.add_member(session, runtime.keys, ADMIN, tokens.team, "oidc:person-7")  # a person of the identity provider


def test_the_worklist_lists_each_patient_once_with_the_clinicians_teams_it_is_on(pilot, runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    from homediag.access import AccessService
    from homediag.users import Principal

    clinician = Principal(tokens.ids["clinician"], "test clinician", "clinician", None)
    with runtime.sessions.begin() as session:
        second = care.create_team(session, runtime.keys, ADMIN, "second team", runtime.settings.pilot)
        care.add_member(session, runtime.keys, ADMIN, second.id, tokens.ids["clinician"])
        elsewhere = care.create_team(session, runtime.keys, ADMIN, "not the clinician's", runtime.settings.pilot)
    both, other = pilot.enrol("0101901234"), pilot.enrol("0202902345")
    pilot.admit(both, team=second.id)
    pilot.admit(both, team=elsewhere.id)
    pilot.consent(both)
    pilot.consent(both, purposes=("TREAT", "HRESCH"))  # two consents: still one row, each team once
    pilot.consent(other)

    def listed() -> dict[str, list[str]]:
        return {row.patient_id: sorted(row.teams) for row in AccessService(runtime).worklist_page(clinician).rows}

    assert listed() == {both: ["second team", "test team"], other: ["test team"]}
    with runtime.sessions.begin() as session:  # off the first team: only the second team's patient, at once
        care.remove_member(session, runtime.keys, ADMIN, tokens.team, tokens.ids["clinician"])
    assert listed() == {both: ["second team"]}
