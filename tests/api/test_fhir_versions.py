"""Versioned resources: meta.versionId/lastUpdated on what is served, ETag and Last-Modified, conditional
reads (304), vread and instance history, If-Match on consent updates, and Location headers that resolve."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from fhir.resources.R4B.bundle import Bundle

from homediag.synthetic import cuff_payload, envelope, synthetic_patients


@pytest.fixture
def reading(client, tokens, pilot):
    patient = synthetic_patients(1, seed=31)[0]
    pid = pilot.enrol(patient.cpr)
    consent = pilot.consent(pid)
    body = envelope(patient, cuff_payload(random.Random(1), datetime(2026, 6, 1, 8, 0)), datetime.now(UTC))
    response = client.post("/ingest", json=body, headers=tokens.auth("gateway"))
    assert response.status_code == 201, response.text
    return patient, pid, consent, response.json()["observations"][0]["id"]


def _assert_versioned(response, version: str) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["meta"]["versionId"] == version
    updated = datetime.fromisoformat(body["meta"]["lastUpdated"].replace("Z", "+00:00"))
    assert updated.tzinfo is not None
    assert response.headers["etag"] == f'W/"{version}"'
    assert response.headers["last-modified"] == format_datetime(updated.astimezone(UTC), usegmt=True)
    return body


def test_an_observation_is_version_1_with_etag_and_conditional_reads(client, tokens, reading):
    *_, oid = reading
    auth = tokens.auth("clinician")
    response = client.get(f"/fhir/Observation/{oid}", headers=auth)
    body = _assert_versioned(response, "1")
    assert body["meta"].get("profile"), "the profile claims stay beside the version"

    assert client.get(f"/fhir/Observation/{oid}", headers={**auth, "If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get(f"/fhir/Observation/{oid}", headers={**auth, "If-None-Match": 'W/"2"'}).status_code == 200
    since = response.headers["last-modified"]
    assert client.get(f"/fhir/Observation/{oid}", headers={**auth, "If-Modified-Since": since}).status_code == 304
    earlier = format_datetime(datetime.now(UTC) - timedelta(days=2), usegmt=True)
    assert client.get(f"/fhir/Observation/{oid}", headers={**auth, "If-Modified-Since": earlier}).status_code == 200

    head = client.head(f"/fhir/Observation/{oid}", headers=auth)
    assert head.status_code == 200 and head.headers["etag"] == 'W/"1"' and head.content == b""

    vread = client.get(f"/fhir/Observation/{oid}/_history/1", headers=auth)
    assert _assert_versioned(vread, "1") == body
    missing = client.get(f"/fhir/Observation/{oid}/_history/2", headers=auth)
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"

    history = client.get(f"/fhir/Observation/{oid}/_history", headers=auth).json()
    Bundle.model_validate(history)
    assert history["type"] == "history" and [e["resource"]["id"] for e in history["entry"]] == [oid]

    search = client.get("/fhir/Observation", params={"_count": "5"}, headers=auth).json()
    assert all(e["resource"]["meta"]["versionId"] == "1" for e in search["entry"])
    assert all("lastUpdated" in e["resource"]["meta"] for e in search["entry"])


def test_vread_and_history_are_decided_as_reads(client, tokens, pilot, reading):
    _, pid, consent, oid = reading
    pilot.withdraw(consent)
    auth = tokens.auth("clinician")
    for path in (f"/fhir/Observation/{oid}/_history/1", f"/fhir/Observation/{oid}/_history"):
        response = client.get(path, headers=auth)
        assert response.status_code == 404, path
        assert oid not in response.text or "is not known" in response.text
    assert client.get(f"/fhir/Patient/{pid}/_history/1", headers=auth).status_code == 404
    # the gateway may not read at all
    assert client.get(f"/fhir/Observation/{oid}/_history/1", headers=tokens.auth("gateway")).status_code == 403


def test_consent_versions_locations_and_if_match(client, tokens, pilot, reading):
    _, pid, _, _ = reading
    from homediag.consent import treatment_consent

    admin = tokens.auth("admin")
    created = client.post("/fhir/Consent", json=treatment_consent(f"Patient/{pid}"), headers=admin)
    assert created.status_code == 201
    assert created.headers["etag"] == 'W/"1"'
    location = created.headers["location"]
    assert location.endswith(f"/Consent/{created.json()['id']}/_history/1")
    first = _assert_versioned(client.get(location, headers=admin), "1")
    assert first["status"] == "active"

    url = f"/fhir/Consent/{first['id']}"
    withdrawn = {**first, "status": "inactive"}
    updated = client.put(url, json=withdrawn, headers={**admin, "If-Match": 'W/"1"'})
    assert updated.status_code == 200 and updated.headers["etag"] == 'W/"2"'
    assert client.get(updated.headers["location"], headers=admin).json()["status"] == "inactive"

    stale = client.put(url, json={**first, "status": "active"}, headers={**admin, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome" and "current version is 2" in stale.text
    assert client.get(url, headers=admin).json()["status"] == "inactive", "a refused update changed nothing"

    # version 1 stays readable as it was
    assert client.get(f"{url}/_history/1", headers=admin).json()["status"] == "active"
    assert client.get(f"{url}/_history/3", headers=admin).status_code == 404
    assert client.get(url, headers={**admin, "If-None-Match": 'W/"2"'}).status_code == 304


def test_patient_device_and_profile_carry_versions(client, tokens, pilot, reading, runtime):
    patient, pid, _, oid = reading
    clinician = tokens.auth("clinician")
    enrolled = client.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": patient.cpr}],
        },
        headers=tokens.auth("admin"),
    )
    assert enrolled.status_code == 200 and enrolled.json()["meta"]["versionId"] == "1"
    assert client.get(enrolled.headers["location"], headers=tokens.auth("admin")).status_code == 200

    _assert_versioned(client.get(f"/fhir/Patient/{pid}", headers=clinician), "1")
    _assert_versioned(client.get(f"/fhir/Patient/{pid}/_history/1", headers=clinician), "1")

    device_ref = client.get(f"/fhir/Observation/{oid}", headers=clinician).json()["device"]["reference"]
    device = _assert_versioned(client.get(f"/fhir/{device_ref}", headers=clinician), "1")
    # the same device again: no new version
    again = envelope(patient, cuff_payload(random.Random(2), datetime(2026, 6, 2, 8, 0)), datetime.now(UTC))
    assert client.post("/ingest", json=again, headers=tokens.auth("gateway")).status_code == 201
    assert client.get(f"/fhir/{device_ref}", headers=clinician).json()["meta"]["versionId"] == "1"
    assert device["modelNumber"] == "BPM-1"

    # a device whose resource a PHD gateway sends again, changed: a new version (through the write path's upsert)
    from homediag.clock import utcnow
    from homediag.store.repositories import devices

    admin = tokens.auth("admin")
    phd = {"resourceType": "Device", "identifier": [{"system": "urn:x", "value": "1"}], "modelNumber": "A"}
    for model in ("A", "A", "B"):
        with runtime.sessions.begin() as session:
            now = utcnow()
            values = {"id": "phd-dev-1", "identifier": "urn:x|1", "kind": "phd", "first_seen": now, "last_seen": now}
            devices.upsert(session, {**values, "resource": {**phd, "modelNumber": model}, "manufacturer": None,
                                     "model": None, "serial": None, "address": None})  # fmt: skip
    now = _assert_versioned(client.get("/fhir/Device/phd-dev-1", headers=admin), "2")
    assert now["modelNumber"] == "B"
    assert client.get("/fhir/Device/phd-dev-1/_history/1", headers=admin).status_code == 404
    assert client.get("/fhir/Device/phd-dev-1/_history/2", headers=admin).status_code == 200

    sd = _assert_versioned(client.get("/fhir/StructureDefinition/homediag-blood-pressure"), "1")
    assert client.get("/fhir/StructureDefinition/homediag-blood-pressure/_history/1").json() == sd
    listed = client.get("/fhir/StructureDefinition").json()
    assert all(e["resource"]["meta"]["versionId"] == "1" for e in listed["entry"])


def test_observation_type_history_lists_what_the_reader_may_see_newest_first(client, tokens, pilot, reading):
    patient, pid, _, oid = reading
    for day in (2, 3, 4):
        body = envelope(patient, cuff_payload(random.Random(day), datetime(2026, 6, day, 8, 0)), datetime.now(UTC))
        assert client.post("/ingest", json=body, headers=tokens.auth("gateway")).status_code == 201
    other = synthetic_patients(2, seed=32)[1]
    pilot.enrol(other.cpr)  # no consent: its readings are in no history this clinician sees
    body = envelope(other, cuff_payload(random.Random(9), datetime(2026, 6, 5, 8, 0)), datetime.now(UTC))
    assert client.post("/ingest", json=body, headers=tokens.auth("gateway")).status_code == 201

    auth = tokens.auth("clinician")
    first = client.get("/fhir/Observation/_history", params={"_count": "3"}, headers=auth)
    assert first.status_code == 200, first.text
    page = first.json()
    Bundle.model_validate(page)
    assert page["type"] == "history" and page["total"] == 8
    seen = []
    while True:
        for entry in page["entry"]:
            assert entry["response"]["etag"] == 'W/"1"' and entry["request"]["method"] == "POST"
            seen.append(entry["resource"])
        following = [link["url"] for link in page.get("link", []) if link["relation"] == "next"]
        if not following:
            break
        assert "/Observation/_history?" in following[0]
        page = client.get(following[0], headers=auth).json()
        assert page["type"] == "history"
    assert len(seen) == len({r["id"] for r in seen}) == 8
    assert {r["subject"]["reference"] for r in seen} == {f"Patient/{pid}"}
    stamps = [r["meta"]["lastUpdated"] for r in seen]
    assert stamps == sorted(stamps, reverse=True)
    assert oid in {r["id"] for r in seen}

    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert client.get("/fhir/Observation/_history", params={"_since": later}, headers=auth).json()["total"] == 0
    assert client.get("/fhir/Observation/_history", params={"code": "x"}, headers=auth).status_code == 400
