"""PHD-conformant gateways through the real ASGI app, on SQLite and PostgreSQL: ``POST /fhir``
(transaction and batch Bundles) and ``POST /fhir/Observation`` with the HL7 PHD IG examples; patient
aliases; Device upserts; conditional create; the three times; no patient identifier in clear in the store."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from homediag import audit
from homediag.ingest import open_upload
from homediag.phd import PHD_IDENTIFIER_SYSTEM, redact_fhir
from homediag.store import models as m
from homediag.synthetic import synthetic_patients
from homediag.users import create_user

PHD_IG = Path(__file__).parents[1] / "fixtures" / "phd-ig"
BUNDLE_1 = (PHD_IG / "bundle-example-1.json").read_bytes()
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
MRN = {"system": "urn:oid:2.999.1.2.3.4.5.6.7.8.10", "value": "sisansarahId"}  # the IG example patient's identifier
EUI64 = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
PATIENTS = synthetic_patients(3, seed=41)  # synthetic CPRs only
SPO2, PULSE, CTS = "150456", "149530", "67975"
FHIR_JSON = {"content-type": "application/fhir+json"}


def bundle_1() -> dict:
    return json.loads(BUNDLE_1)


def post_bundle(client, tokens, body, role: str = "gateway"):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/fhir", content=content, headers={**tokens.auth(role), **FHIR_JSON})


def post_observation(
    client, tokens, resource, *, role: str = "gateway", if_none_exist: str | None = None, token: str | None = None
):
    headers = {**(tokens.auth(role) if token is None else {"Authorization": f"Bearer {token}"}), **FHIR_JSON}
    if if_none_exist:
        headers["If-None-Exist"] = if_none_exist
    return client.post("/fhir/Observation", content=json.dumps(resource).encode(), headers=headers)


def enrol(client, tokens, patient=PATIENTS[0], *aliases: dict) -> str:
    response = client.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "identifier": [{"system": CPR_SYSTEM, "value": patient.cpr}, *aliases],
            "name": [{"family": patient.family, "given": [patient.given]}],
        },
        headers=tokens.auth("admin"),
    )
    assert response.status_code in (200, 201), response.text
    patient_id = str(response.json()["id"])
    runtime = client.app.state.runtime
    with runtime.sessions.begin() as session:  # in the test clinician's care, enrolled on the test gateway
        from conftest import ADMIN

        from homediag import care

        care.admit(session, runtime.keys, ADMIN, patient_id, team=tokens.team, gateway=tokens.ids["gateway"])
    return patient_id


def count(runtime, model) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def observations(runtime) -> dict[str, m.Observation]:
    with runtime.sessions() as session:
        return {o.code: o for o in session.scalars(select(m.Observation))}


def upload(runtime, upload_id: str) -> m.Upload:
    with runtime.sessions() as session:
        return session.get(m.Upload, upload_id)


def diagnostics(outcome: dict) -> str:
    return " | ".join(i["diagnostics"] for i in outcome["issue"])


def expressions(outcome: dict) -> list[str]:
    return [e for i in outcome["issue"] for e in i.get("expression", [])]


def statuses(response) -> list[str]:
    return [e["response"]["status"] for e in response.json()["entry"]]


def spo2(patient_id: str, *, taken: datetime | None = None, value: int = 97, identifier: str | None = "sid-1") -> dict:
    """A PHD numeric SpO2 Observation about ``Patient/{patient_id}``."""
    taken = taken or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    resource = copy.deepcopy(bundle_1()["entry"][4]["resource"])
    resource.pop("extension")
    resource.pop("device")
    resource.pop("id")
    resource["subject"] = {"reference": f"Patient/{patient_id}"}
    resource["effectiveDateTime"] = taken.isoformat()
    resource["valueQuantity"]["value"] = value
    if identifier is not None:
        resource["identifier"] = [
            {
                "system": PHD_IDENTIFIER_SYSTEM,
                "value": f"00-1C-05-04-00-00-78-25-{MRN['value']}-{MRN['system']}-150456-{identifier}",
            }
        ]
    return resource


@pytest.fixture
def enrolled(client, tokens) -> str:
    """The IG example's patient: a synthetic CPR, with the example's identifier registered as an alias."""
    return enrol(client, tokens, PATIENTS[0], MRN)


# -- bundle-example-1 ------------------------------------------------------------------------------
def test_bundle_example_1_loads_and_the_clinician_finds_it_after_consent(client, tokens, pilot, runtime, enrolled):
    response = post_bundle(client, tokens, BUNDLE_1)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "transaction-response"
    assert statuses(response) == ["200 OK", "201 Created", "201 Created", "201 Created", "201 Created", "201 Created"]
    locations = [e["response"]["location"] for e in body["entry"]]
    assert locations[0] == f"Patient/{enrolled}"
    assert [loc.split("/")[0] for loc in locations[1:]] == [
        "Device",
        "Device",
        "Observation",
        "Observation",
        "Observation",
    ]
    phg, phd = (loc.split("/")[1] for loc in locations[1:3])
    cts_id, spo2_id, pulse_id = (loc.split("/")[1] for loc in locations[3:])

    stored = observations(runtime)
    assert set(stored) == {CTS, SPO2, PULSE}
    sent = bundle_1()["entry"][4]["resource"]
    ox = stored[SPO2]
    assert ox.id == spo2_id and ox.value == 98 and ox.unit == "%" and ox.device_id == phd
    assert ox.resource["subject"] == {"reference": f"Patient/{enrolled}"}
    assert ox.resource["device"] == {"reference": f"Device/{phd}"}
    assert ox.resource["extension"] == [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice",
            "valueReference": {"reference": f"Device/{phg}"},
        },
        {
            "url": "http://hl7.org/fhir/uv/phd/StructureDefinition/CoincidentTimeStampReference",
            "valueReference": {"reference": f"Observation/{cts_id}"},
        },
    ]
    for key in ("meta", "category", "code", "valueQuantity", "component", "effectiveDateTime", "status"):
        assert ox.resource[key] == sent[key], key  # otherwise as sent
    assert stored[PULSE].id == pulse_id
    # the coincident time stamp is about the PHD (its subject stays the device) and filed under the patient
    assert stored[CTS].resource["subject"] == {"reference": f"Device/{phd}"}
    assert stored[CTS].patient_key == ox.patient_key

    # three times: the device's (as sent), the gateway's (the coincident time stamp), the platform's
    assert ox.effective_start == datetime(2019, 9, 20, 16, 40, 16, 936000)
    assert ox.gateway_received_at == datetime(2019, 9, 20, 16, 40, 7, 936000)
    assert abs(ox.received_at - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=1)

    with runtime.sessions() as session:
        devices = {d.id: d for d in session.scalars(select(m.Device))}
    assert devices[phg].kind == "phg" and devices[phg].identifier == f"{EUI64}|4C-4E-49-12-34-56-FF-FF"
    assert devices[phd].kind == "phd" and devices[phd].identifier == f"{EUI64}|00-1C-05-04-00-00-78-25"
    assert devices[phd].manufacturer == "Nonin Medical, Inc." and devices[phd].resource["modelNumber"] == "Model 3150"
    assert devices[phd].resource["id"] == phd

    doc = tokens.auth("clinician")
    assert client.get(f"/fhir/Observation?patient={enrolled}", headers=doc).json()["total"] == 0  # no consent yet
    pilot.consent(enrolled)
    found = client.get(f"/fhir/Observation?patient={enrolled}&code=urn:iso:std:iso:11073:10101|150456", headers=doc)
    assert found.status_code == 200, found.text
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [spo2_id]
    assert (
        client.get(f"/fhir/Observation?patient={enrolled}&code=http://loinc.org|8867-4", headers=doc).json()["total"]
        == 1
    )
    assert client.get(f"/fhir/Observation/{pulse_id}", headers=doc).json()["valueQuantity"]["value"] == 47
    assert client.get(f"/fhir/Device/{phd}", headers=doc).json()["serialNumber"] == "0400007825"
    with runtime.sessions() as session:
        assert audit.verify(session, runtime.keys).ok


def test_sending_it_again_stores_nothing_new(client, tokens, runtime, enrolled):
    first = post_bundle(client, tokens, BUNDLE_1)
    again = post_bundle(client, tokens, BUNDLE_1)

    assert first.status_code == again.status_code == 200, again.text
    assert statuses(again) == ["200 OK"] * 6
    assert [e["response"]["location"] for e in again.json()["entry"]] == [
        e["response"]["location"] for e in first.json()["entry"]
    ]
    assert count(runtime, m.Observation) == 3 and count(runtime, m.Device) == 2
    with runtime.sessions() as session:
        kept = sorted((u.outcome, u.created, u.duplicates) for u in session.scalars(select(m.Upload)))
    assert kept == [("created", 3, 0), ("duplicate", 0, 3)]


def test_concurrent_sends_of_one_bundle_store_it_once(runtime, client, tokens, enrolled):
    import threading

    from homediag.phd import PhdGatewayService
    from homediag.users import Principal

    gateway = Principal(tokens.ids["gateway"], "test gateway", "gateway", None)  # the patient is enrolled on it
    service = PhdGatewayService(runtime)
    n = 6
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def send(i: int) -> None:
        barrier.wait()
        results[i] = service.post_bundle(gateway, BUNDLE_1)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [r.status for r in results] == [200] * n, [r.body for r in results]
    created = sorted(sum(e["response"]["status"] == "201 Created" for e in r.body["entry"][3:]) for r in results)
    assert created == [0] * (n - 1) + [3]
    assert count(runtime, m.Observation) == 3 and count(runtime, m.Device) == 2
    with runtime.sessions() as session:
        assert audit.verify(session, runtime.keys).ok


def test_a_device_is_upserted_by_identifier(client, tokens, runtime, enrolled):
    post_bundle(client, tokens, BUNDLE_1)
    changed = bundle_1()
    device = changed["entry"][2]["resource"]
    device["version"][0]["value"] = "1.0A"  # new firmware
    device["identifier"][0]["value"] = device["identifier"][0]["value"].lower()  # EUI-64 case differs between gateways
    response = post_bundle(client, tokens, changed)
    assert response.status_code == 200, response.text
    assert statuses(response)[2] == "200 OK"
    with runtime.sessions() as session:
        rows = session.scalars(select(m.Device).where(m.Device.kind == "phd")).all()
    assert len(rows) == 1
    assert rows[0].resource["version"][0]["value"] == "1.0A"


# -- all or nothing, or each on its own ------------------------------------------------------------
def broken_bundle(kind: str) -> dict:
    bundle = bundle_1()
    bundle["type"] = kind
    bundle["entry"][4]["resource"]["valueQuantity"]["value"] = 150  # SpO2 150 %
    return bundle


def test_a_broken_entry_in_a_transaction_stores_nothing_and_is_named(client, tokens, runtime, enrolled):
    response = post_bundle(client, tokens, broken_bundle("transaction"))

    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Bundle.entry[4] (urn:uuid:752b1a27-bbed-47d6-bbb8-b649a5261c52)" in diagnostics(outcome)
    assert "outside the physiologic limits" in diagnostics(outcome)
    assert "Bundle.entry[4].resource.valueQuantity.value" in expressions(outcome)
    assert count(runtime, m.Observation) == 0 and count(runtime, m.Device) == 0
    kept = upload(runtime, response.headers["X-Upload-Id"])
    assert kept.outcome == "rejected" and kept.rejected == 1
    assert json.loads(open_upload(runtime, kept)) == broken_bundle("transaction")


def test_a_batch_stores_the_good_entries(client, tokens, runtime, enrolled):
    response = post_bundle(client, tokens, broken_bundle("batch"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "batch-response"
    assert statuses(response) == [
        "200 OK",
        "201 Created",
        "201 Created",
        "201 Created",
        "422 Unprocessable Entity",
        "201 Created",
    ]
    refused = body["entry"][4]["response"]["outcome"]
    assert "Bundle.entry[4].resource.valueQuantity.value" in expressions(refused)
    assert set(observations(runtime)) == {CTS, PULSE}
    assert count(runtime, m.Device) == 2
    kept = upload(runtime, response.headers["X-Upload-Id"])
    assert (kept.outcome, kept.created, kept.rejected) == ("partial", 2, 1)


def test_an_entry_that_refers_to_a_refused_one_is_refused_too(client, tokens, runtime, enrolled):
    bundle = bundle_1()
    bundle["type"] = "batch"
    del bundle["entry"][2]["resource"]["identifier"]  # the PHD cannot be kept: no identifier
    response = post_bundle(client, tokens, bundle)
    assert response.status_code == 200, response.text
    assert statuses(response) == [
        "200 OK",
        "201 Created",
        "422 Unprocessable Entity",
        "422 Unprocessable Entity",
        "422 Unprocessable Entity",
        "422 Unprocessable Entity",
    ]
    assert "needs one with a system and a value" in diagnostics(response.json()["entry"][2]["response"]["outcome"])
    assert "was refused" in diagnostics(response.json()["entry"][4]["response"]["outcome"])
    assert count(runtime, m.Observation) == 0


# -- patients --------------------------------------------------------------------------------------
def test_an_unenrolled_patient_is_refused_and_kept(client, tokens, runtime):
    enrol(client, tokens, PATIENTS[1])  # someone else; the example's identifier is nobody's alias
    response = post_bundle(client, tokens, BUNDLE_1)

    assert response.status_code == 422, response.text
    assert "not enrolled" in diagnostics(response.json())
    assert "Bundle.entry[0].resource.identifier" in expressions(response.json())
    assert count(runtime, m.Observation) == 0
    kept = upload(runtime, response.headers["X-Upload-Id"])
    assert kept.outcome == "rejected"
    assert open_upload(runtime, kept) == BUNDLE_1  # byte for byte
    assert "not enrolled" in json.dumps(kept.issues)
    assert MRN["value"] not in json.dumps(kept.redacted)


def test_a_batch_for_an_unknown_patient_reference_refuses_each_reading(client, tokens, runtime, enrolled):
    bundle = json.loads((PHD_IG / "bundle-continuousnonin.json").read_text())  # subject Patient/patientExample-1
    bundle["type"] = "batch"
    response = post_bundle(client, tokens, bundle)
    assert response.status_code == 200, response.text
    assert set(statuses(response)) == {"422 Unprocessable Entity"}
    assert "not enrolled" in diagnostics(response.json()["entry"][0]["response"]["outcome"])
    assert upload(runtime, response.headers["X-Upload-Id"]).outcome == "rejected"
    assert count(runtime, m.Observation) == 0


def test_a_subject_identifier_names_the_patient_by_cpr_or_alias(client, tokens, runtime, enrolled):
    by_cpr = spo2("x", identifier="a")
    by_cpr["subject"] = {
        "identifier": {"system": CPR_SYSTEM, "value": PATIENTS[0].cpr},
        "display": f"{PATIENTS[0].given} {PATIENTS[0].family}",
    }
    by_alias = spo2("x", identifier="b", value=96)
    by_alias["subject"] = {"identifier": MRN}
    for resource in (by_cpr, by_alias):
        response = post_observation(client, tokens, resource)
        assert response.status_code == 201, response.text
        assert response.json()["subject"] == {"reference": f"Patient/{enrolled}"}
    unknown = spo2("x", identifier="c")
    unknown["subject"] = {"identifier": {"system": CPR_SYSTEM, "value": PATIENTS[2].cpr}}
    response = post_observation(client, tokens, unknown)
    assert response.status_code == 422 and "not enrolled" in diagnostics(response.json())


def test_aliases_are_registered_by_enrolment_and_kept_only_as_hmac(client, tokens, runtime):
    pid = enrol(client, tokens, PATIENTS[0], MRN)
    assert (
        enrol(client, tokens, PATIENTS[0], {"system": "urn:oid:2.999.9", "value": "other-mrn-77"}) == pid
    )  # a second alias later
    with runtime.sessions() as session:
        aliases = session.scalars(select(m.PatientAlias)).all()
    assert sorted(a.system for a in aliases) == [MRN["system"], "urn:oid:2.999.9"]
    assert all(len(a.value_hmac) == 64 and a.value_hmac not in (MRN["value"], "other-mrn-77") for a in aliases)

    taken = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": CPR_SYSTEM, "value": PATIENTS[1].cpr}, MRN]},
        headers=tokens.auth("admin"),
    )
    assert taken.status_code == 422 and "another patient" in diagnostics(taken.json())
    no_system = client.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "identifier": [{"system": CPR_SYSTEM, "value": PATIENTS[1].cpr}, {"value": "x"}],
        },
        headers=tokens.auth("admin"),
    )
    assert no_system.status_code == 422
    assert count(runtime, m.Patient) == 1  # neither refused enrolment left a patient behind


def test_no_cpr_or_alias_in_clear_anywhere_in_the_database(client, tokens, runtime, enrolled):
    cpr = PATIENTS[0].cpr
    assert post_bundle(client, tokens, BUNDLE_1).status_code == 200
    by_cpr = spo2(enrolled, identifier="d")
    by_cpr["subject"] = {"identifier": {"system": CPR_SYSTEM, "value": cpr}}
    assert post_observation(client, tokens, by_cpr).status_code == 201
    leaky = spo2(enrolled, identifier="e")
    leaky["subject"] = {"identifier": MRN}
    leaky["note"] = [{"text": f"patient {MRN['value']}"}]  # the request says the value is the patient's identifier
    refused = post_observation(client, tokens, leaky)
    assert refused.status_code == 422 and "Observation.note[0].text" in expressions(refused.json())
    assert MRN["value"] not in refused.text
    unenrolled = bundle_1()
    unenrolled["entry"][0]["resource"]["identifier"].append({"system": CPR_SYSTEM, "value": PATIENTS[2].cpr})
    assert post_bundle(client, tokens, unenrolled).status_code == 422

    with runtime.sessions() as session:
        stored = session.scalars(select(m.Observation)).all()
        identifiers = [i for o in stored for i in o.resource.get("identifier", [])]
        uploads = session.scalars(select(m.Upload)).all()
    assert {i["system"] for i in identifiers} == {PHD_IDENTIFIER_SYSTEM}
    assert all(len(i["value"]) == 64 for i in identifiers)  # pseudonymised: the PHD identifier embeds the patient's
    assert len(uploads) == 4
    with runtime.engine.connect() as conn:
        dump = []
        for table in inspect(runtime.engine).get_table_names():
            dump += [repr(tuple(row)) for row in conn.execute(text(f"select * from {table}"))]
    secrets_ = (cpr, PATIENTS[2].cpr, MRN["value"])
    assert not [row for row in dump if any(s in row for s in secrets_)]
    for u in uploads:
        assert all(s not in json.dumps(u.redacted) for s in secrets_)
        assert all(s.encode() not in u.sealed for s in secrets_)
    assert any(
        PATIENTS[2].cpr.encode() in open_upload(runtime, u) for u in uploads
    )  # the sealed copy is the body as sent


def test_redaction_of_a_bundle():
    bundle = bundle_1()
    bundle["entry"][4]["resource"]["identifier"] = [{"system": PHD_IDENTIFIER_SYSTEM, "value": "X-sisansarahId-1"}]
    bundle["entry"][5]["resource"]["subject"] = {
        "identifier": {"system": CPR_SYSTEM, "value": "0101901234"},
        "display": "Test Testesen",
    }
    redacted = redact_fhir(bundle)
    patient = redacted["entry"][0]["resource"]
    assert patient["identifier"] == [{"system": MRN["system"], "value": "[redacted]"}]
    assert patient["name"] == "[redacted]" and patient["meta"] == bundle["entry"][0]["resource"]["meta"]
    assert redacted["entry"][0]["request"]["ifNoneExist"] == "[redacted]"
    assert redacted["entry"][4]["resource"]["identifier"][0]["value"] == "[redacted]"
    assert redacted["entry"][5]["resource"]["subject"] == {
        "identifier": {"system": CPR_SYSTEM, "value": "[redacted]"},
        "display": "[redacted]",
    }
    assert redacted["entry"][2]["resource"]["serialNumber"] == "0400007825"  # not a patient's
    assert "sisansarahId" not in json.dumps(redacted) and "0101901234" not in json.dumps(redacted)


# -- single Observations: conditional create, references, times -----------------------------------
def test_a_single_observation_is_created_then_matched(client, tokens, runtime, enrolled):
    resource = spo2(enrolled)
    phd_id = resource["identifier"][0]
    condition = f"identifier={phd_id['system']}|{phd_id['value']}"

    first = post_observation(client, tokens, resource, if_none_exist=condition)
    assert first.status_code == 201, first.text
    stored = first.json()
    assert first.headers["Location"].endswith(f"/fhir/Observation/{stored['id']}")
    assert stored["subject"] == {"reference": f"Patient/{enrolled}"}
    assert stored["identifier"][0]["system"] == PHD_IDENTIFIER_SYSTEM and MRN["value"] not in first.text

    changed = {**resource, "valueQuantity": {**resource["valueQuantity"], "value": 91}}  # same identifier, other value
    again = post_observation(client, tokens, changed, if_none_exist=condition)
    assert again.status_code == 200, again.text
    assert again.json() == stored and again.headers["Location"] == first.headers["Location"]
    # without the header the PHD identifier is still the dedup key
    assert post_observation(client, tokens, changed).status_code == 200
    assert count(runtime, m.Observation) == 1
    assert upload(runtime, again.headers["X-Upload-Id"]).outcome == "duplicate"

    # another gateway, on which the patient is not enrolled, is refused and learns nothing of the reading
    with runtime.sessions.begin() as session:
        _, other = create_user(session, name="other tablet", role="gateway")
    elsewhere = post_observation(client, tokens, resource, if_none_exist=condition, token=other)
    assert elsewhere.status_code == 422 and elsewhere.json()["resourceType"] == "OperationOutcome"
    assert "not enrolled on this gateway" in elsewhere.text
    assert "valueQuantity" not in elsewhere.text


def test_without_an_identifier_the_dedup_key_is_derived(client, tokens, runtime, enrolled):
    resource = spo2(enrolled, identifier=None)
    assert post_observation(client, tokens, resource).status_code == 201
    assert post_observation(client, tokens, resource).status_code == 200
    assert (
        post_observation(
            client, tokens, {**resource, "valueQuantity": {**resource["valueQuantity"], "value": 95}}
        ).status_code
        == 201
    )
    assert count(runtime, m.Observation) == 2


def test_device_references_to_stored_devices_and_by_identifier(client, tokens, runtime, enrolled):
    locations = [e["response"]["location"] for e in post_bundle(client, tokens, BUNDLE_1).json()["entry"]]
    phd = locations[2]
    by_id = {**spo2(enrolled, identifier="f"), "device": {"reference": phd}}
    by_identifier = {
        **spo2(enrolled, identifier="g"),
        "device": {"identifier": {"system": EUI64, "value": "00-1c-05-04-00-00-78-25"}},
    }
    unknown = {**spo2(enrolled, identifier="h"), "device": {"reference": "Device/phd-74E8FFFEFF051C00.001C05FFE874"}}
    assert post_observation(client, tokens, by_id).json()["device"] == {"reference": phd}
    assert post_observation(client, tokens, by_identifier).json()["device"]["reference"] == phd
    refused = post_observation(client, tokens, unknown)
    assert refused.status_code == 422 and expressions(refused.json()) == ["Observation.device"]


@pytest.mark.parametrize(("minutes_ahead", "status"), [(60, 422), (5, 201)])
def test_readings_dated_in_the_future(client, tokens, runtime, enrolled, minutes_ahead, status):
    resource = spo2(enrolled, taken=datetime.now(UTC) + timedelta(minutes=minutes_ahead))
    response = post_observation(client, tokens, resource)
    assert response.status_code == status, response.text
    if status == 422:
        assert "ahead of the platform's clock" in diagnostics(response.json())
        assert "Observation.effectiveDateTime" in expressions(response.json())
        assert count(runtime, m.Observation) == 0
        assert upload(runtime, response.headers["X-Upload-Id"]).outcome == "rejected"


def test_the_gateway_receive_time_comes_from_the_request_when_nothing_says_otherwise(client, tokens, runtime, enrolled):
    before = datetime.now(UTC).replace(tzinfo=None)
    assert post_observation(client, tokens, spo2(enrolled)).status_code == 201
    row = next(iter(observations(runtime).values()))
    assert before - timedelta(seconds=1) <= row.gateway_received_at <= row.received_at
    stamped = spo2(enrolled, identifier="i")
    stamped["extension"] = [
        {
            "url": "https://homediag.example.org/fhir/StructureDefinition/gateway-received-time",
            "valueDateTime": "2026-01-02T03:04:05+01:00",
        }
    ]
    assert post_observation(client, tokens, stamped).status_code == 201
    with runtime.sessions() as session:
        times = set(session.scalars(select(m.Observation.gateway_received_at)))
    assert datetime(2026, 1, 2, 2, 4, 5) in times


# -- what is refused before anything else ----------------------------------------------------------
def test_a_body_that_is_not_json_is_400_and_kept(client, tokens, runtime):
    raw = b'{"resourceType": "Bundle", "type": "transac'
    response = client.post("/fhir", content=raw, headers={**tokens.auth("gateway"), **FHIR_JSON})
    assert response.status_code == 400 and "not JSON" in diagnostics(response.json())
    assert open_upload(runtime, upload(runtime, response.headers["X-Upload-Id"])) == raw


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, "transaction or batch"),
        ({"resourceType": "Observation"}, "takes a Bundle"),
    ],
)
def test_what_is_not_a_transaction_or_batch_is_refused_and_kept(client, tokens, runtime, body, says):
    response = post_bundle(client, tokens, body)
    assert response.status_code in (400, 422) and says in diagnostics(response.json())
    assert upload(runtime, response.headers["X-Upload-Id"]).outcome == "rejected"


def test_other_resource_types_and_methods_are_refused(client, tokens, runtime, enrolled):
    bundle = bundle_1()
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:1",
            "resource": {"resourceType": "Consent", "status": "active"},
            "request": {"method": "POST", "url": "Consent"},
        }
    )
    bundle["entry"][4]["request"]["method"] = "DELETE"
    response = post_bundle(client, tokens, bundle)
    assert response.status_code == 422
    assert {"Bundle.entry[6].resource.resourceType", "Bundle.entry[4].request.method"} <= set(
        expressions(response.json())
    )


@pytest.mark.parametrize("role", ["clinician", "admin"])
def test_only_gateways_may_post(client, tokens, runtime, role):
    assert post_bundle(client, tokens, BUNDLE_1, role=role).status_code == 403
    assert post_observation(client, tokens, spo2("x"), role=role).status_code == 403
    assert count(runtime, m.Upload) == 0


# what the migrations after 0001 add: tables, and columns of tables 0001 made
LATER_TABLES = {
    "patient_alias",
    "care_team",
    "care_team_member",
    "care_team_patient",
    "gateway_patient",
    "gateway_device",
}
LATER_COLUMNS = {
    "device": {"identifier", "kind", "resource", "version", "updated_at"},
    "observation": {"gateway_received_at", "txn"},
}


def _schema(url: str) -> tuple[set[str], dict[str, set[str]], list]:
    """Tables, columns per table, and the differences from the models (alembic's autogenerate comparison)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from homediag.store.models import Base

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            tables = set(inspector.get_table_names())
            columns = {t: {c["name"] for c in inspector.get_columns(t)} for t in tables}
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    return tables, columns, diff


def test_the_migrations_go_down_and_up_again(tmp_path):
    from alembic import command

    from homediag.store.database import alembic_config, upgrade

    url = f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"
    upgrade(url)
    tables, _, diff = _schema(url)
    assert diff == [] and LATER_TABLES <= tables

    command.downgrade(alembic_config(url), "0001")
    tables, columns, diff = _schema(url)
    assert not tables & LATER_TABLES, "a downgrade to 0001 leaves tables of later migrations"
    for table, added in LATER_COLUMNS.items():
        assert not columns[table] & added, f"a downgrade to 0001 leaves later columns of {table}"
    # the comparison with the models sees what is missing: the check below can fail
    assert LATER_TABLES <= {d[1].name for d in diff if isinstance(d, tuple) and d[0] == "add_table"}

    upgrade(url)
    tables, columns, diff = _schema(url)
    assert diff == [], diff
    assert LATER_TABLES <= tables
    for table, added in LATER_COLUMNS.items():
        assert added <= columns[table]
