"""The HL7 PHD IG's gateway interactions: client-assigned ids by PUT (kept, or refused saying why, never
re-homed), references resolved against each entry's fullUrl (relative and absolute alike), conditional
create on search criteria, and every example Bundle of the IG with its expected outcome.

The example Bundles are the IG's own (tests/fixtures/phd-ig/, copied from shared/fixtures/phd-ig/)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from test_phd_gateway import (
    BUNDLE_1,
    EUI64,
    PHD_IG,
    diagnostics,
    expressions,
    post_bundle,
    post_observation,
    spo2,
    statuses,
)
from test_phd_gateway import enrolled as enrolled_fixture

enrolled = enrolled_fixture


def example(name: str) -> dict:
    return json.loads((PHD_IG / name).read_text())


def device(identifier: str, model: str = "PHD-1") -> dict:
    return {
        "resourceType": "Device",
        "identifier": [{"system": EUI64, "value": identifier}],
        "manufacturer": "Syntetisk Medico",
        "modelNumber": model,
    }


def put(resource: dict, url: str, full_url: str | None = None) -> dict:
    entry = {"resource": resource, "request": {"method": "PUT", "url": url}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def bundle(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


# -- the IG's example Bundles, one test each -------------------------------------------------------
def test_ig_bundle_example_1_is_accepted(client, tokens, enrolled):
    response = post_bundle(client, tokens, BUNDLE_1)
    assert response.status_code == 200, response.text
    assert statuses(response) == ["200 OK", "201 Created", "201 Created", "201 Created", "201 Created", "201 Created"]


def test_ig_bundle_continuousnonin_is_refused_for_the_resources_it_names_but_does_not_send(client, tokens, enrolled):
    """The continuous-oximeter example refers to a Patient, Devices and a coincident time stamp by the ids
    its gateway gave them in earlier PUTs (Patient/patientExample-1, Device/phd-74E8..., Observation/coin-
    example-1), none of which is in the Bundle or stored here: the IG's own rule (a reference must resolve)
    refuses it, naming them."""
    sent = example("bundle-continuousnonin.json")
    response = post_bundle(client, tokens, sent)
    assert response.status_code == 422
    said = diagnostics(response.json())
    assert "Patient/patientExample-1: the patient is not enrolled" in said
    assert all(e.startswith("Bundle.entry[") for e in expressions(response.json()) if e != "Bundle")

    # with the patient one enrolled here, the Devices it names by id are what is missing
    mine = copy.deepcopy(sent)
    for entry in mine["entry"]:
        entry["resource"]["subject"] = {"reference": f"Patient/{enrolled}"}
    response = post_bundle(client, tokens, mine)
    assert response.status_code == 422
    assert "Device/phd-74E8FFFEFF051C00.001C05FFE874 is not a Device known here" in diagnostics(response.json())

    # and the IG's PUT of that Device under its id is refused saying why (the id is longer than can be kept)
    phd = example("phd-74E8FFFEFF051C00.001C05FFE874.json")
    response = post_bundle(client, tokens, bundle(put(phd, f"Device/{phd['id']}")))
    assert response.status_code == 422
    assert "cannot be kept" in diagnostics(response.json()) and "POST the Device" in diagnostics(response.json())


# -- client-assigned ids ---------------------------------------------------------------------------
def test_a_device_put_under_its_id_is_kept_there(client, tokens, enrolled):
    response = post_bundle(client, tokens, bundle(put(device("00-11-22-FF-FE-33-44-55"), "Device/phd-0011223344")))
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["response"] == {"status": "201 Created", "location": "Device/phd-0011223344"}
    read = client.get("/fhir/Device/phd-0011223344", headers=tokens.auth("admin"))
    assert read.status_code == 200 and read.json()["modelNumber"] == "PHD-1"

    again = post_bundle(
        client, tokens, bundle(put(device("00-11-22-FF-FE-33-44-55", "PHD-2"), "Device/phd-0011223344"))
    )
    assert statuses(again) == ["200 OK"]
    read = client.get("/fhir/Device/phd-0011223344", headers=tokens.auth("admin")).json()
    assert read["modelNumber"] == "PHD-2" and read["meta"]["versionId"] == "2"

    # the same device under another id is refused, not re-homed; another device at this id too
    moved = post_bundle(client, tokens, bundle(put(device("00-11-22-FF-FE-33-44-55"), "Device/phd-elsewhere")))
    assert moved.status_code == 422 and "kept here as Device/phd-0011223344" in diagnostics(moved.json())
    taken = post_bundle(client, tokens, bundle(put(device("AA-BB-CC-FF-FE-DD-EE-FF"), "Device/phd-0011223344")))
    assert taken.status_code == 422 and "another device here" in diagnostics(taken.json())
    mismatch = put(device("AA-BB-CC-FF-FE-DD-EE-FF") | {"id": "x1"}, "Device/x2")
    response = post_bundle(client, tokens, bundle(mismatch))
    assert response.status_code == 422 and "is not the id in request.url" in diagnostics(response.json())


def test_an_observation_put_under_its_id_is_kept_and_never_changed(client, tokens, enrolled):
    reading = spo2(enrolled, identifier="put-1")
    response = post_bundle(client, tokens, bundle(put(reading, "Observation/gw-reading-1")))
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["response"]["location"] == "Observation/gw-reading-1"
    assert post_bundle(client, tokens, bundle(put(reading, "Observation/gw-reading-1"))).status_code == 200

    twice = post_bundle(client, tokens, bundle(put(reading, "Observation/gw-reading-2")))
    assert twice.status_code == 422 and "stored here already as Observation/gw-reading-1" in diagnostics(twice.json())
    changed = spo2(enrolled, identifier="put-2", value=91)
    response = post_bundle(client, tokens, bundle(put(changed, "Observation/gw-reading-1")))
    assert response.status_code == 422 and "never changed" in diagnostics(response.json())


# -- references against each entry's fullUrl -----------------------------------------------------------
@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_a_reading_refers_to_an_in_bundle_time_stamp_relative_or_absolute(client, tokens, runtime, enrolled, form):
    base = "https://gateway.example/fhir"
    cts = copy.deepcopy(example("coin-example-1.json"))
    cts.pop("id", None)
    taken = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    cts["effectiveDateTime"] = taken.isoformat()
    gw = device("00-11-22-FF-FE-33-44-66")
    cts["subject"] = {"reference": f"{base}/Device/gw-1"}
    cts["device"] = {"reference": "Device/gw-1"}  # relative to the entry's fullUrl as well
    reading = spo2(enrolled, identifier=f"cts-{form}", taken=taken)
    target = "Observation/cts-1" if form == "relative" else f"{base}/Observation/cts-1"
    reading["extension"] = [
        {
            "url": "http://hl7.org/fhir/uv/phd/StructureDefinition/CoincidentTimeStampReference",
            "valueReference": {"reference": target},
        }
    ]
    sent = bundle(
        {"fullUrl": f"{base}/Device/gw-1", "resource": gw, "request": {"method": "POST", "url": "Device"}},
        {"fullUrl": f"{base}/Observation/cts-1", "resource": cts, "request": {"method": "POST", "url": "Observation"}},
        {
            "fullUrl": f"{base}/Observation/r-1",
            "resource": reading,
            "request": {"method": "POST", "url": "Observation"},
        },
    )
    response = post_bundle(client, tokens, sent)
    assert response.status_code == 200, response.text
    locations = [e["response"]["location"] for e in response.json()["entry"]]
    from homediag.store import models as m

    with runtime.sessions() as session:
        stored = session.get(m.Observation, locations[2].split("/")[1])
        ext = stored.resource["extension"][0]["valueReference"]["reference"]
    assert ext == locations[1], "the reference became ours, relative or absolute alike"


# -- conditional create on search criteria ------------------------------------------------------
def test_conditional_create_on_search_criteria(client, tokens, enrolled):
    taken = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    first = post_observation(client, tokens, spo2(enrolled, identifier="c-1", taken=taken))
    assert first.status_code == 201, first.text
    stored_id = first.json()["id"]
    condition = f"code=urn:iso:std:iso:11073:10101|150456&date={taken.isoformat().replace('+00:00', 'Z')}"
    again = post_observation(client, tokens, spo2(enrolled, identifier="c-2", taken=taken), if_none_exist=condition)
    assert again.status_code == 200 and again.headers["location"].endswith(f"Observation/{stored_id}")

    other_time = taken - timedelta(hours=1)
    condition = f"code=urn:iso:std:iso:11073:10101|150456&date={other_time.isoformat().replace('+00:00', 'Z')}"
    created = post_observation(
        client, tokens, spo2(enrolled, identifier="c-3", taken=other_time), if_none_exist=condition
    )
    assert created.status_code == 201

    two = post_observation(
        client, tokens, spo2(enrolled, identifier="c-4"), if_none_exist="code=urn:iso:std:iso:11073:10101|150456"
    )
    assert two.status_code == 412 and "more than one" in diagnostics(two.json())
    bad = post_observation(client, tokens, spo2(enrolled, identifier="c-5"), if_none_exist="performer=Practitioner/1")
    assert bad.status_code == 400 and "performer" in diagnostics(bad.json())
    # in a Bundle, PUT Observation?criteria is a conditional update: a reading is created once
    entry = put(spo2(enrolled, identifier="c-6", taken=taken), f"Observation?_id={stored_id}")
    response = post_bundle(client, tokens, bundle(entry))
    assert (
        response.status_code == 200
        and response.json()["entry"][0]["response"]["location"] == f"Observation/{stored_id}"
    )
