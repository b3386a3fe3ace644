"""``/admin``: an administrator manages care teams, gateways and users over HTTP, with the same effect
as the command line, audited, and nobody else may."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from homediag.store.models import AuditEvent
from homediag.synthetic import cuff_payload, envelope, synthetic_patients


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _new_user(client, tokens, role: str, name: str) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    made = client.post("/admin/users", json={"role": role, "name": name}, headers=tokens.auth("admin"))
    assert made.status_code == 201, made.text
    return made.json()["id"], _bearer(made.json()["token"])


def _upload(client, person, headers):  # type: ignore[no-untyped-def]
    taken = datetime.now(ZoneInfo("Europe/Copenhagen")).replace(microsecond=0) - timedelta(hours=2)
    payload = cuff_payload(random.Random(7), taken.replace(tzinfo=None))
    return client.post("/ingest", json=envelope(person, payload, taken), headers=headers)


def _refused_as_not_enrolled(answer) -> None:  # type: ignore[no-untyped-def]
    assert answer.status_code == 422, answer.text
    assert "not enrolled on this gateway" in answer.json()["issues"]["issue"][0]["diagnostics"]


def test_an_administrator_sets_up_a_team_and_a_gateway_over_http_and_it_takes_effect(client, tokens, pilot) -> None:  # type: ignore[no-untyped-def]
    person = synthetic_patients(1, seed=211)[0]
    patient = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": person.cpr}]},
        headers=tokens.auth("admin"),
    ).json()["id"]
    pilot.consent(patient)
    doctor_id, doctor = _new_user(client, tokens, "clinician", "Dr. Http")
    tablet_id, tablet = _new_user(client, tokens, "gateway", "tablet-http")
    admin = tokens.auth("admin")

    # before: the gateway may not upload for the patient, the doctor sees nothing
    _refused_as_not_enrolled(_upload(client, person, tablet))
    team = client.post("/admin/care-teams", json={"name": "Hjertesvigt hjemme"}, headers=admin)
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]
    assert (
        client.post(f"/admin/care-teams/{team_id}/members", json={"user": doctor_id}, headers=admin).status_code == 200
    )
    assert (
        client.post(f"/admin/care-teams/{team_id}/patients", json={"patient": patient}, headers=admin).status_code
        == 200
    )
    assert (
        client.post(f"/admin/gateways/{tablet_id}/patients", json={"patient": patient}, headers=admin).status_code
        == 200
    )
    assert client.post(f"/admin/gateways/{tablet_id}/devices", json={"device": "*"}, headers=admin).status_code == 200

    assert _upload(client, person, tablet).status_code == 201
    assert client.get("/fhir/Observation", params={"patient": patient}, headers=doctor).json()["total"] == 2
    teams = {t["id"]: t for t in client.get("/admin/care-teams", headers=admin).json()}
    assert teams[team_id]["members"] == [doctor_id] and teams[team_id]["patients"] == [patient]
    gateways = {g["id"]: g for g in client.get("/admin/gateways", headers=admin).json()}
    assert gateways[tablet_id] == {"id": tablet_id, "name": "tablet-http", "patients": [patient], "devices": ["*"]}

    # and undone: the doctor stops seeing the patient, the gateway's next upload is refused
    assert client.delete(f"/admin/care-teams/{team_id}/members/{doctor_id}", headers=admin).status_code == 204
    assert client.get("/fhir/Observation", params={"patient": patient}, headers=doctor).json()["total"] == 0
    assert client.delete(f"/admin/gateways/{tablet_id}/patients/{patient}", headers=admin).status_code == 204
    _refused_as_not_enrolled(_upload(client, person, tablet))
    assert (
        client.delete(f"/admin/gateways/{tablet_id}/devices", params={"device": "*"}, headers=admin).status_code == 204
    )
    assert client.get("/admin/gateways", headers=admin).json()[-1]["devices"] == []


def test_users_are_made_and_revoked_over_http_and_the_token_is_shown_once(client, tokens, runtime) -> None:  # type: ignore[no-untyped-def]
    user_id, user = _new_user(client, tokens, "evaluator", "FIERS analyst")
    assert client.get("/fhir/Observation", headers=user).status_code == 200
    listed = {u["id"]: u for u in client.get("/admin/users", headers=tokens.auth("admin")).json()}
    assert listed[user_id]["state"] == "active" and "token" not in listed[user_id]
    assert client.post(f"/admin/users/{user_id}/revoke", headers=tokens.auth("admin")).status_code == 200
    assert client.get("/fhir/Observation", headers=user).status_code == 401
    assert client.get("/admin/users", headers=tokens.auth("admin")).json()[-1]["state"] == "revoked"
    with runtime.sessions() as session:
        actions = set(
            session.execute(select(AuditEvent.action).where(AuditEvent.entity == f"user/{user_id}")).scalars()
        )
    assert actions == {"user-add", "user-revoke"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "where"),
    [
        ("post", "/admin/users", {"role": "superuser", "name": "x"}, 400, "role"),
        ("post", "/admin/users", {"role": "user"}, 400, "name"),
        ("post", "/admin/care-teams/team-nope/members", {"user": "clinician-nope"}, 404, "team-nope"),
        ("post", "/admin/gateways/gateway-nope/patients", {"patient": "p"}, 404, "p"),
        ("post", "/admin/users/nobody/revoke", None, 404, "nobody"),
    ],
)
def test_bad_administration_requests_say_what_is_wrong(client, tokens, method, path, body, status, where) -> None:  # type: ignore[no-untyped-def]
    answer = getattr(client, method)(path, json=body, headers=tokens.auth("admin"))
    assert answer.status_code == status
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert where in str(outcome["issue"])


def test_only_an_administrator_may_manage_and_lists_are_audited(client, tokens, runtime) -> None:  # type: ignore[no-untyped-def]
    for role in ("clinician", "gateway"):
        assert client.get("/admin/care-teams", headers=tokens.auth(role)).status_code == 403
        assert (
            client.post("/admin/users", json={"role": "admin", "name": "me"}, headers=tokens.auth(role)).status_code
            == 403
        )
    assert client.get("/admin/gateways").status_code == 401
    client.get("/admin/care-teams", headers=tokens.auth("admin"))
    with runtime.sessions() as session:
        reads = session.execute(select(AuditEvent.actor).where(AuditEvent.action == "care-team-read")).scalars().all()
    assert reads == [tokens.ids["admin"]]
