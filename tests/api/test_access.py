"""Access enforcement through the FHIR API: consent decides what a clinician sees, roles what anyone may do."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from homediag.store.models import AuditEvent, Patient
from homediag.synthetic import SyntheticPatient, cuff_payload, envelope, synthetic_patients
from homediag.users import authenticate

CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"


def ingest(client, tokens, patient: SyntheticPatient, *local_times: datetime) -> list[str]:
    """Push one cuff reading per device local time; returns the created Observation ids."""
    rng = random.Random(len(local_times))
    ids = []
    for taken in local_times:
        response = client.post(
            "/ingest",
            json=envelope(patient, cuff_payload(rng, taken), datetime.now(UTC)),
            headers=tokens.auth("gateway"),
        )
        assert response.status_code == 201, response.text
        ids += [o["id"] for o in response.json()["observations"]]
    return ids


def search(client, tokens, query: str = "", role: str = "clinician"):
    return client.get(f"/fhir/Observation{query}", headers=tokens.auth(role))


def enrolled_with_readings(client, tokens, pilot, index: int = 0, readings: int = 1):
    patient = synthetic_patients(index + 1, seed=7)[index]
    pid = pilot.enrol(patient.cpr, family=patient.family, given=patient.given)
    ids = ingest(client, tokens, patient, *(datetime(2026, 3, 1, 8, 0) + timedelta(hours=h) for h in range(readings)))
    return patient, pid, ids


def _without_id(outcome: dict, observation_id: str) -> dict:
    return {
        **outcome,
        "issue": [{**i, "diagnostics": i["diagnostics"].replace(observation_id, "<id>")} for i in outcome["issue"]],
    }


# -- consent decides ----------------------------------------------------------------------------
def test_observations_visible_only_while_treatment_consent_is_active(client, tokens, pilot):
    _, pid, ids = enrolled_with_readings(client, tokens, pilot)
    assert len(ids) == 2  # blood-pressure panel and pulse rate

    # no consent on file: nothing, and a read looks exactly like an unknown id
    assert search(client, tokens, f"?patient={pid}").json()["total"] == 0
    hidden = client.get(f"/fhir/Observation/{ids[0]}", headers=tokens.auth("clinician"))
    unknown = client.get("/fhir/Observation/0123456789abcdef0123456789abcdef", headers=tokens.auth("clinician"))
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.headers["content-type"] == unknown.headers["content-type"]
    assert hidden.json()["resourceType"] == "OperationOutcome"
    assert _without_id(hidden.json(), ids[0]) == _without_id(unknown.json(), "0123456789abcdef0123456789abcdef")

    consent = pilot.consent(pid)
    bundle = search(client, tokens, f"?patient={pid}").json()
    assert bundle["total"] == 2
    assert sorted(e["resource"]["id"] for e in bundle["entry"]) == sorted(ids)
    read = client.get(f"/fhir/Observation/{ids[0]}", headers=tokens.auth("clinician"))
    assert read.status_code == 200
    assert read.json()["id"] == ids[0]

    pilot.withdraw(consent)
    assert search(client, tokens, f"?patient={pid}").json()["total"] == 0
    assert client.get(f"/fhir/Observation/{ids[0]}", headers=tokens.auth("clinician")).status_code == 404


def test_consent_for_another_purpose_gives_nothing(client, tokens, pilot):
    _, pid, ids = enrolled_with_readings(client, tokens, pilot)
    pilot.consent(pid, purposes=("HRESCH",))
    assert search(client, tokens, f"?patient={pid}").json()["total"] == 0
    assert search(client, tokens).json()["total"] == 0
    assert client.get(f"/fhir/Observation/{ids[0]}", headers=tokens.auth("clinician")).status_code == 404


def test_consent_outside_its_period_gives_nothing(client, tokens, pilot):
    _, pid, ids = enrolled_with_readings(client, tokens, pilot)
    today = date.today()
    pilot.consent(pid, start=today + timedelta(days=5))  # not started yet
    pilot.consent(pid, start=today - timedelta(days=30), end=today - timedelta(days=10))  # ended
    assert search(client, tokens, f"?patient={pid}").json()["total"] == 0
    assert client.get(f"/fhir/Observation/{ids[0]}", headers=tokens.auth("clinician")).status_code == 404

    pilot.consent(pid, start=today - timedelta(days=1), end=today + timedelta(days=30))  # current: now visible
    assert search(client, tokens, f"?patient={pid}").json()["total"] == 2
    assert client.get(f"/fhir/Observation/{ids[0]}", headers=tokens.auth("clinician")).status_code == 200


def test_search_without_patient_counts_and_pages_only_consented_readings(client, tokens, pilot):
    _, consented, consented_ids = enrolled_with_readings(client, tokens, pilot, index=0, readings=4)
    _, other, other_ids = enrolled_with_readings(client, tokens, pilot, index=1, readings=3)
    pilot.consent(consented)

    first = search(client, tokens, "?_count=3").json()
    assert first["total"] == len(consented_ids) == 8
    seen: list[str] = []
    pages = 0
    bundle = first
    while True:
        pages += 1
        assert len(bundle["entry"]) <= 3
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        assert {e["resource"]["subject"]["reference"] for e in bundle["entry"]} == {f"Patient/{consented}"}
        assert bundle["total"] == 8
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not nxt:
            break
        response = client.get(nxt[0], headers=tokens.auth("clinician"))
        assert response.status_code == 200
        bundle = response.json()
    assert pages == 3
    assert len(seen) == len(set(seen)) == 8
    assert set(seen) == set(consented_ids)
    assert not set(seen) & set(other_ids)


# -- Patient ------------------------------------------------------------------------------------
def test_patient_read_discloses_identity_only_to_a_clinician_with_consent(client, tokens, pilot):
    patient, pid, _ = enrolled_with_readings(client, tokens, pilot)

    assert client.get(f"/fhir/Patient/{pid}", headers=tokens.auth("clinician")).status_code == 404

    admin = client.get(f"/fhir/Patient/{pid}", headers=tokens.auth("admin"))
    assert admin.status_code == 200
    assert admin.json()["id"] == pid
    assert "identifier" not in admin.json() and "name" not in admin.json()
    assert patient.cpr not in admin.text

    assert client.get(f"/fhir/Patient/{pid}", headers=tokens.auth("gateway")).status_code == 403

    pilot.consent(pid)
    # identity only with a stated reason (a re-identification, audited with the reason)
    withheld = client.get(f"/fhir/Patient/{pid}", headers=tokens.auth("clinician"))
    assert withheld.status_code == 200
    assert patient.cpr not in withheld.text and "identity-withheld" in withheld.text
    reason = {**tokens.auth("clinician"), "X-Reidentification-Reason": "home BP review before consultation"}
    clinician = client.get(f"/fhir/Patient/{pid}", headers=reason)
    assert clinician.status_code == 200
    body = clinician.json()
    assert body["identifier"] == [{"system": CPR_SYSTEM, "value": patient.cpr}]
    assert body["name"][0]["family"] == patient.family
    assert body["name"][0]["given"] == [patient.given]
    with client.app.state.runtime.sessions() as session:
        from sqlalchemy import select

        from homediag.store.models import AuditEvent

        reidentified = (
            session.execute(select(AuditEvent.detail).where(AuditEvent.action == "re-identify")).scalars().all()
        )
    assert len(reidentified) == 1 and "home BP review before consultation" in reidentified[0]


def test_enrolment_response_does_not_echo_the_cpr(client, tokens):
    patient = synthetic_patients(1, seed=11)[0]
    response = client.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "identifier": [{"system": CPR_SYSTEM, "value": patient.cpr}],
            "name": [{"family": patient.family}],
        },
        headers=tokens.auth("admin"),
    )
    assert response.status_code == 201
    assert patient.cpr not in response.text
    assert all(patient.cpr not in value for value in response.headers.values())
    assert "identifier" not in response.json()


# -- roles --------------------------------------------------------------------------------------
def test_only_clinicians_read_observations(client, tokens, pilot):
    _, pid, ids = enrolled_with_readings(client, tokens, pilot)
    pilot.consent(pid)
    for role in ("gateway", "admin"):
        response = search(client, tokens, f"?patient={pid}", role=role)
        assert response.status_code == 403, role
        assert response.json()["resourceType"] == "OperationOutcome"
        assert client.get(f"/fhir/Observation/{ids[0]}", headers=tokens.auth(role)).status_code == 403
    anonymous = client.get(f"/fhir/Observation?patient={pid}")
    assert anonymous.status_code == 401
    assert anonymous.json()["resourceType"] == "OperationOutcome"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert (
        client.get(f"/fhir/Observation?patient={pid}", headers={"Authorization": "Bearer not-a-token"}).status_code
        == 401
    )


# -- audit --------------------------------------------------------------------------------------
def test_permitted_and_denied_reads_are_audited(client, tokens, pilot, runtime):
    _, pid, ids = enrolled_with_readings(client, tokens, pilot)
    consent = pilot.consent(pid)
    assert client.get(f"/fhir/Observation/{ids[0]}", headers=tokens.auth("clinician")).status_code == 200
    pilot.withdraw(consent)
    assert client.get(f"/fhir/Observation/{ids[0]}", headers=tokens.auth("clinician")).status_code == 404

    with runtime.sessions() as session:
        clinician = authenticate(session, tokens.clinician)
        pkey = session.execute(select(Patient.patient_key).where(Patient.id == pid)).scalar_one()
        rows = session.execute(
            select(AuditEvent.outcome, AuditEvent.purpose, AuditEvent.detail)
            .where(
                AuditEvent.actor == clinician.id,
                AuditEvent.patient_key == pkey,
                AuditEvent.entity == f"Observation/{ids[0]}",
            )
            .order_by(AuditEvent.seq)
        ).all()
    assert [(r.outcome, r.purpose) for r in rows] == [("permit", "TREAT"), ("deny", "TREAT")]
    assert rows[1].detail == "consent withdrawn"


def test_denied_patient_read_is_audited(client, tokens, pilot, runtime):
    _, pid, _ = enrolled_with_readings(client, tokens, pilot)
    assert (
        client.get(
            f"/fhir/Patient/{pid}", headers={**tokens.auth("clinician"), "X-Reidentification-Reason": "review"}
        ).status_code
        == 404
    )
    with runtime.sessions() as session:
        clinician = authenticate(session, tokens.clinician)
        pkey = session.execute(select(Patient.patient_key).where(Patient.id == pid)).scalar_one()
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.outcome).where(
                AuditEvent.actor == clinician.id, AuditEvent.patient_key == pkey, AuditEvent.entity == f"Patient/{pid}"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("re-identify", "deny")]


# -- Consent API --------------------------------------------------------------------------------
def test_consent_versions_and_history(client, tokens, pilot):
    _, pid, _ = enrolled_with_readings(client, tokens, pilot)
    created = pilot.consent(pid)
    assert created["id"] and created["meta"]["versionId"] == "1"

    withdrawn = pilot.withdraw(created)
    assert withdrawn["id"] == created["id"]
    assert withdrawn["meta"]["versionId"] == "2"
    assert client.get(f"/fhir/Consent/{created['id']}", headers=tokens.auth("admin")).json()["status"] == "inactive"

    history = client.get(f"/fhir/Consent/{created['id']}/_history", headers=tokens.auth("admin"))
    assert history.status_code == 200
    assert history.headers["content-type"].startswith("application/fhir+json")
    bundle = history.json()
    assert bundle["type"] == "history" and bundle["total"] == 2
    assert [(e["resource"]["meta"]["versionId"], e["resource"]["status"]) for e in bundle["entry"]] == [
        ("2", "inactive"),
        ("1", "active"),
    ]


def test_consent_post_status_and_location(client, tokens, pilot):
    from homediag.consent import treatment_consent

    _, pid, _ = enrolled_with_readings(client, tokens, pilot)
    response = client.post("/fhir/Consent", json=treatment_consent(f"Patient/{pid}"), headers=tokens.auth("admin"))
    assert response.status_code == 201
    assert response.headers["location"].endswith(f"/fhir/Consent/{response.json()['id']}/_history/1")


def test_consent_for_unknown_patient_or_with_bad_purpose_is_refused(client, tokens, pilot):
    from homediag.consent import treatment_consent

    unknown = client.post(
        "/fhir/Consent", json=treatment_consent("Patient/does-not-exist"), headers=tokens.auth("admin")
    )
    assert unknown.status_code == 422
    assert unknown.json()["resourceType"] == "OperationOutcome"
    assert unknown.json()["issue"][0]["expression"] == ["Consent.patient"]

    _, pid, _ = enrolled_with_readings(client, tokens, pilot)
    bad = treatment_consent(f"Patient/{pid}")
    bad["provision"]["purpose"][0]["code"] = "NOT-A-PURPOSE"
    response = client.post("/fhir/Consent", json=bad, headers=tokens.auth("admin"))
    assert response.status_code == 422
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Consent.provision.purpose[0].code"]
    assert "NOT-A-PURPOSE" in issue["diagnostics"]
    # nothing was recorded for the patient
    assert client.get(f"/fhir/Consent?patient={pid}", headers=tokens.auth("admin")).json()["total"] == 0


def test_only_admins_manage_consents(client, tokens, pilot):
    from homediag.consent import treatment_consent

    _, pid, _ = enrolled_with_readings(client, tokens, pilot)
    created = pilot.consent(pid)
    for role in ("clinician", "gateway"):
        assert (
            client.post(
                "/fhir/Consent", json=treatment_consent(f"Patient/{pid}"), headers=tokens.auth(role)
            ).status_code
            == 403
        )
        assert (
            client.put(
                f"/fhir/Consent/{created['id']}", json={**created, "status": "inactive"}, headers=tokens.auth(role)
            ).status_code
            == 403
        )
        assert client.get(f"/fhir/Consent/{created['id']}", headers=tokens.auth(role)).status_code == 403
    # the refused withdrawal did not take effect
    assert client.get(f"/fhir/Consent/{created['id']}", headers=tokens.auth("admin")).json()["meta"]["versionId"] == "1"
    assert search(client, tokens, f"?patient={pid}").json()["total"] == 2
