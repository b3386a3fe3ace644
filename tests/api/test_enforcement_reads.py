"""Reads that used to bypass the access layer, now decided and audited by it: the upload log's device
ids, a PHD gateway's read-back, Device reads outside a clinician's care."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from homediag import care
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import Principal, create_user

ADMIN = Principal("enforcement-admin", "test admin", "admin", None)


CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _vendor(runtime, organisation: str) -> dict[str, str]:
    with runtime.sessions.begin() as session:
        _user, token = create_user(session, name=f"vendor {organisation}", role="vendor", organisation=organisation)
    return {"Authorization": f"Bearer {token}"}


def _audit(runtime, action: str) -> list[m.AuditEvent]:
    with runtime.sessions() as session:
        return list(
            session.scalars(select(m.AuditEvent).where(m.AuditEvent.action == action).order_by(m.AuditEvent.seq))
        )


def _upload_one(client, tokens, pilot, person, *, consent: tuple[str, ...] = ("TREAT", "HTEST")) -> dict:
    patient_id = pilot.enrol(person.cpr)
    pilot.consent(patient_id, purposes=consent)
    taken = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    sent = envelope(person, cuff_payload(random.Random(7), taken), datetime.now(UTC))
    response = client.post("/ingest", json=sent, headers=tokens.auth("gateway"))
    assert response.status_code == 201, response.text
    return {"patient": patient_id, "sent": sent, "result": response.json()}


def test_a_vendor_sees_its_devices_under_its_own_pseudonyms_never_the_platform_id(client, runtime, tokens, pilot):
    [person] = synthetic_patients(1, seed=91)
    upload = _upload_one(client, tokens, pilot, person)
    with runtime.sessions() as session:
        [device_id] = session.scalars(select(m.Device.id)).all()
    maker = upload["sent"]["device"]["manufacturer"]
    first = client.get("/uploads", headers=_vendor(runtime, maker)).json()["uploads"]
    again = client.get("/uploads", headers=_vendor(runtime, maker)).json()["uploads"]
    admin = client.get("/uploads", headers=tokens.auth("admin")).json()["uploads"]
    assert admin[0]["device"] == device_id  # the administrator investigates with the platform's id
    shown = first[0]["device"]
    assert shown != device_id and device_id not in shown
    assert shown == again[0]["device"]  # stable for the vendor (same organisation, same domain)
    d = upload["sent"]["device"]
    bare = hashlib.sha256("|".join(d[k] for k in ("manufacturer", "model", "serial", "address")).encode()).hexdigest()
    assert bare[:24] not in shown  # not the hash of what the vendor itself knows of its device


def test_a_clinician_reads_a_device_only_of_a_patient_it_may_see(client, runtime, tokens, pilot):
    seen, unseen = synthetic_patients(2, seed=92)
    _upload_one(client, tokens, pilot, seen)
    hidden = _upload_one(client, tokens, pilot, unseen, consent=("HRESCH",))  # no treatment consent
    with runtime.sessions() as session:
        devices = dict(session.execute(select(m.Device.serial, m.Device.id)).all())
    ok = client.get(f"/fhir/Device/{devices[seen.cuff_serial]}", headers=tokens.auth("clinician"))
    assert ok.status_code == 200 and ok.json()["serialNumber"] == seen.cuff_serial
    refused = client.get(f"/fhir/Device/{devices[unseen.cuff_serial]}", headers=tokens.auth("clinician"))
    unknown = client.get("/fhir/Device/0123456789abcdef01234567", headers=tokens.auth("clinician"))
    assert refused.status_code == unknown.status_code == 404
    assert unseen.cuff_serial not in refused.text
    assert client.get(f"/fhir/Device/{devices[unseen.cuff_serial]}", headers=tokens.auth("admin")).status_code == 200
    reads = {(e.entity, e.outcome) for e in _audit(runtime, "read") if (e.entity or "").startswith("Device/")}
    assert (f"Device/{devices[seen.cuff_serial]}", "permit") in reads
    assert (f"Device/{devices[unseen.cuff_serial]}", "deny") in reads
    assert hidden["patient"]


def test_a_phd_gateways_read_back_is_decided_and_audited(client, runtime, tokens, pilot):
    [person] = synthetic_patients(1, seed=93)
    patient_id = pilot.enrol(person.cpr)
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:6f0c3b2e-1d5a-4c1e-9a57-1b2c3d4e5f60"}],
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat(),
        "valueQuantity": {"value": 61, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    gateway = tokens.auth("gateway")
    created = client.post("/fhir/Observation", json=observation, headers=gateway)
    assert created.status_code == 201, created.text
    again = client.post("/fhir/Observation", json=observation, headers=gateway)
    assert again.status_code == 200 and again.json()["resourceType"] == "Observation"
    with runtime.sessions.begin() as session:
        other, token = create_user(session, name="another tablet", role="gateway")
    pilot.admit(patient_id, gateway=other.id)
    with runtime.sessions.begin() as session:
        care.allow_device(session, runtime.keys, ADMIN, other.id, care.ANY_DEVICE)
    theirs = client.post("/fhir/Observation", json=observation, headers={"Authorization": f"Bearer {token}"})
    assert theirs.status_code == 200 and theirs.json()["resourceType"] == "OperationOutcome"
    events = _audit(runtime, "read-back")
    assert [(e.actor, e.outcome) for e in events] == [(tokens.ids["gateway"], "permit"), (other.id, "deny")]
    assert all(e.entity == f"Observation/{created.json()['id']}" for e in events)


def test_answers_to_callers_are_never_cached(client, runtime, tokens, pilot):
    [person] = synthetic_patients(1, seed=94)
    upload = _upload_one(client, tokens, pilot, person)
    reason = {"X-Reidentification-Reason": "home BP review"}
    identified = client.get(f"/fhir/Patient/{upload['patient']}", headers={**tokens.auth("clinician"), **reason})
    assert identified.status_code == 200 and identified.json()["identifier"][0]["value"] == person.cpr
    for response in (
        identified,
        client.get("/fhir/Observation", headers=tokens.auth("clinician")),
        client.get("/uploads", headers=tokens.auth("admin")),
        client.get("/fhir/Observation/nothing", headers=tokens.auth("clinician")),  # a 404 too
    ):
        assert response.headers["cache-control"] == "no-store", response.request.url
    assert "cache-control" not in client.get("/fhir/metadata").headers  # public, no caller: may be cached


def test_an_unexpected_error_is_a_500_operation_outcome(runtime, tokens, monkeypatch):
    from fastapi.testclient import TestClient

    from homediag.access import AccessService
    from homediag.api.app import create_app

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(AccessService, "search_observations", broken)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        response = client.get("/fhir/Observation", headers=tokens.auth("clinician"))
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "RuntimeError" in outcome["issue"][0]["diagnostics"] and "a bug of ours" not in response.text
