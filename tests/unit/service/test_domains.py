"""Readers outside care: evaluators and vendors see their own pseudonyms, never ids that link domains."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from homediag.runtime import Runtime
from homediag.store.models import Patient
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import create_user


@pytest.fixture
def readers(runtime: Runtime) -> dict[str, dict[str, str]]:
    made = {}
    with runtime.sessions.begin() as session:
        for key, role, org in (
            ("fiers", "evaluator", "FIERS"),
            ("fiers2", "evaluator", "FIERS"),
            ("other-eval", "evaluator", "Other evaluation bureau"),
            ("vendor", "vendor", "Syntetisk Medico"),
            ("other-vendor", "vendor", "Anden Producent"),
        ):
            made[key] = {"Authorization": f"Bearer {create_user(session, name=key, role=role, organisation=org)[1]}"}
    return made


@pytest.fixture
def pilot_data(client, tokens, pilot):  # type: ignore[no-untyped-def]
    """Two patients with readings; one consents to treatment, evaluation and product testing, the other to
    treatment only."""
    people = synthetic_patients(2, seed=21)
    ids = [pilot.enrol(p.cpr, family=p.family) for p in people]
    pilot.consent(ids[0], purposes=("TREAT", "HRESCH", "HTEST"))
    pilot.consent(ids[1], purposes=("TREAT",))
    taken = datetime.now(ZoneInfo("Europe/Copenhagen")).replace(microsecond=0) - timedelta(hours=2)
    for person in people:
        sent = client.post(
            "/ingest",
            json=envelope(person, cuff_payload(random.Random(3), taken.replace(tzinfo=None)), taken),
            headers=tokens.auth("gateway"),
        )
        assert sent.status_code == 201, sent.text
    return people, ids


def _search(client, headers, **params):  # type: ignore[no-untyped-def]
    response = client.get("/fhir/Observation", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_evaluator_sees_only_permitted_patients_under_pseudonyms(client, tokens, runtime, readers, pilot_data) -> None:  # type: ignore[no-untyped-def]
    people, ids = pilot_data
    bundle = _search(client, readers["fiers"])
    assert bundle["total"] == 2  # blood pressure and pulse of the one patient who permits evaluation
    text = str(bundle)
    with runtime.sessions() as session:
        keys = set(session.execute(select(Patient.patient_key)).scalars())
    for secret in (*ids, *keys, *(p.cpr for p in people), *(p.cuff_serial for p in people)):
        assert secret not in text
    own_ids = {e["resource"]["id"] for e in _search(client, tokens.auth("clinician"))["entry"]}
    assert not {e["resource"]["id"] for e in bundle["entry"]} & own_ids
    assert all("identifier" not in e["resource"] for e in bundle["entry"])

    subject = bundle["entry"][0]["resource"]["subject"]["reference"]
    pseudonym = subject.removeprefix("Patient/")
    # the pseudonym works as the evaluator's handle: search, read, and the pseudonymous patient
    assert _search(client, readers["fiers"], patient=pseudonym)["total"] == 2
    one = bundle["entry"][0]["resource"]["id"]
    read = client.get(f"/fhir/Observation/{one}", headers=readers["fiers"])
    assert read.status_code == 200 and read.json()["id"] == one
    patient = client.get(f"/fhir/Patient/{pseudonym}", headers=readers["fiers"])
    assert patient.status_code == 200 and patient.json()["id"] == pseudonym
    assert "identifier" not in patient.json() and "name" not in patient.json()
    # the real ids mean nothing to the evaluator
    assert client.get(f"/fhir/Patient/{ids[0]}", headers=readers["fiers"]).status_code == 404
    assert _search(client, readers["fiers"], patient=ids[0])["total"] == 0


def test_domains_are_stable_within_an_organisation_and_unlinkable_across(client, readers, pilot_data) -> None:  # type: ignore[no-untyped-def]
    first = {e["resource"]["subject"]["reference"] for e in _search(client, readers["fiers"])["entry"]}
    colleague = {e["resource"]["subject"]["reference"] for e in _search(client, readers["fiers2"])["entry"]}
    other = {e["resource"]["subject"]["reference"] for e in _search(client, readers["other-eval"])["entry"]}
    vendor = {
        e["resource"]["subject"]["reference"] for e in _search(client, readers["vendor"], **{"_count": "50"})["entry"]
    }
    assert first == colleague
    assert len(first) == 1 and len(other) == 1 and len(vendor) == 1
    assert not first & other and not first & vendor and not other & vendor
    foreign = next(iter(other)).removeprefix("Patient/")
    assert client.get(f"/fhir/Patient/{foreign}", headers=readers["fiers"]).status_code == 404


def test_vendor_sees_only_its_own_devices_readings_under_test_consent(client, readers, pilot_data) -> None:  # type: ignore[no-untyped-def]
    assert _search(client, readers["vendor"])["total"] == 2
    assert _search(client, readers["other-vendor"])["total"] == 0


@pytest.mark.parametrize(("reader", "purpose"), [("fiers", "TREAT"), ("vendor", "HRESCH")])
def test_a_purpose_the_role_may_not_use_is_refused(client, readers, pilot_data, reader: str, purpose: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/fhir/Observation", headers={**readers[reader], "X-Purpose-Of-Use": purpose})
    assert response.status_code == 403
    assert purpose in response.json()["issue"][0]["diagnostics"]


def test_clinician_states_treatment(client, tokens, pilot_data) -> None:  # type: ignore[no-untyped-def]
    ok = client.get("/fhir/Observation", headers={**tokens.auth("clinician"), "X-Purpose-Of-Use": "TREAT"})
    assert ok.status_code == 200 and ok.json()["total"] == 4
    assert (
        client.get("/fhir/Observation", headers={**tokens.auth("clinician"), "X-Purpose-Of-Use": "HRESCH"}).status_code
        == 403
    )
