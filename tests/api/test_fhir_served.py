"""A search in care is written from each Observation's stored text (``observation.served_json``) with meta and
the clinician's triage spliced in: the Bundle must be exactly what parsing each stored resource gives (the path
a row without the text takes), valid FHIR, with every decimal as it was sent."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
import simplejson
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import Text, cast, select, text, update
from test_phd_gateway import enrol, post_observation, spo2

from homediag import served
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients


def _exact(response) -> dict:
    """The body as JSON with every decimal exact (2.50 and 2.5 differ)."""
    assert response.status_code == 200, response.text
    return simplejson.loads(response.content, use_decimal=True)


def _unspliced(runtime) -> None:
    """Every row as one written before the served text existed: searches parse its resource."""
    with runtime.sessions.begin() as session:
        session.execute(update(m.Observation).values(served_json=None, served_marks=None))


@pytest.fixture
def cuff_readings(client, tokens, pilot):
    """A hypertensive patient's blood pressure over a week (panels with components, some red or yellow)."""
    patient = synthetic_patients(1, seed=77)[0]
    pid = pilot.enrol(patient.cpr)
    pilot.consent(pid)
    rng = random.Random(5)
    start = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0) - timedelta(days=7)
    for n in range(8):
        taken = start + timedelta(hours=19 * n)
        body = envelope(patient, cuff_payload(rng, taken, hypertensive=True), datetime.now(UTC))
        response = client.post("/ingest", json=body, headers=tokens.auth("gateway"))
        assert response.status_code == 201, response.text
    return pid


def test_a_spliced_search_is_what_parsing_each_resource_gives(client, tokens, runtime, cuff_readings):
    params = {"patient": cuff_readings, "_count": "50"}
    auth = tokens.auth("clinician")
    with runtime.sessions() as session:
        stored = session.execute(
            select(m.Observation.served_json, m.Observation.served_marks, cast(m.Observation.resource, Text))
        ).all()
    assert stored and all(marks is not None for _, marks, _ in stored), "ingest writes where a read splices"
    if runtime.engine.dialect.name == "sqlite":  # the text stored once: the resource is it
        assert all(text is None and resource == served.written(json.loads(resource))[0] for text, _, resource in stored)
    else:
        assert all(text is not None for text, _, _ in stored), "ingest writes the text beside the jsonb"

    spliced_response = client.get("/fhir/Observation", params=params, headers=auth)
    spliced = _exact(spliced_response)
    Bundle.model_validate_json(spliced_response.content)
    _unspliced(runtime)
    parsed = _exact(client.get("/fhir/Observation", params=params, headers=auth))

    assert spliced["total"] == parsed["total"] >= 8
    # the paging links carry a fresh token each time; everything else is the same, key by key
    assert [e["resource"] for e in spliced["entry"]] == [e["resource"] for e in parsed["entry"]]
    assert [e["fullUrl"] for e in spliced["entry"]] == [e["fullUrl"] for e in parsed["entry"]]
    resources = [e["resource"] for e in spliced["entry"]]
    assert all(r["meta"]["versionId"] == "1" and r["meta"]["lastUpdated"] for r in resources)
    assert all(r["meta"].get("profile") for r in resources), "the stored meta is kept beside the version"
    panels = [r for r in resources if r.get("component")]
    assert panels, "blood-pressure panels were searched"
    assert all("interpretation" in r and "referenceRange" in c for r in panels for c in r["component"][:2])
    colours = {r["interpretation"][1]["coding"][0]["code"] for r in panels}
    assert colours & {"red", "yellow"}, "the triage was not all green: the splice carried real verdicts"


def test_the_type_history_and_a_walk_of_pages_read_the_spliced_entries(client, tokens, runtime, cuff_readings):
    auth = tokens.auth("clinician")
    history = client.get("/fhir/Observation/_history", params={"_count": "3"}, headers=auth)
    assert history.status_code == 200, history.text
    Bundle.model_validate_json(history.content)
    assert all(e["response"]["etag"] == 'W/"1"' for e in history.json()["entry"])
    seen: list[str] = []
    page = client.get("/fhir/Observation", params={"patient": cuff_readings, "_count": "3"}, headers=auth).json()
    while True:
        seen += [e["resource"]["id"] for e in page["entry"]]
        following = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not following:
            break
        page = client.get(following[0], headers=auth).json()
    assert len(seen) == len(set(seen)) == page["total"]


def test_decimals_keep_their_digits_and_a_resource_with_its_own_interpretation_is_served_whole(
    client, tokens, runtime, pilot
):
    pid = enrol(client, tokens)
    pilot.consent(pid)
    taken = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    precise = spo2(pid, taken=taken, identifier="precise")
    text = json.dumps(precise).replace('"value": 97', '"value": 91.50')
    assert "91.50" in text
    response = client.post(
        "/fhir/Observation",
        content=text.encode(),
        headers={**tokens.auth("gateway"), "content-type": "application/fhir+json"},
    )
    assert response.status_code == 201, response.text
    # a gateway's own interpretation: the clinician's triage replaces it, so this one is served by parsing
    own = spo2(pid, taken=taken - timedelta(hours=1), identifier="own", value=99)
    own["interpretation"] = [{"text": "as the device said"}]
    assert post_observation(client, tokens, own).status_code == 201
    with runtime.sessions() as session:
        marks = dict(session.execute(select(m.Observation.value, m.Observation.served_marks)).all())
    assert marks[99] is None and marks[91.5] is not None

    auth = tokens.auth("clinician")
    params = {"patient": pid, "_sort": "-date"}
    response = client.get("/fhir/Observation", params=params, headers=auth)
    assert b'"value":91.50' in response.content
    Bundle.model_validate_json(response.content)
    spliced = _exact(response)
    _unspliced(runtime)
    parsed = _exact(client.get("/fhir/Observation", params=params, headers=auth))
    assert [e["resource"] for e in spliced["entry"]] == [e["resource"] for e in parsed["entry"]]
    first, second = (e["resource"] for e in spliced["entry"])
    assert str(first["valueQuantity"]["value"]) == "91.50"
    assert first["interpretation"][1]["coding"][0]["code"] in ("yellow", "red")  # 91.50 % is low
    assert second["interpretation"] != [{"text": "as the device said"}]  # the clinician's triage, as before


def test_a_remembered_triage_follows_a_change_of_thresholds(client, tokens, runtime, cuff_readings):
    """A repeated search splices what it remembers of each reading's triage (no parsing); a new settings version
    in force at the readings' time is a new triage at once, the same as parsing gives."""
    params = {"patient": cuff_readings, "code": "150020", "_count": "50"}
    auth = tokens.auth("clinician")

    def panels(response) -> list[dict]:
        return [e["resource"] for e in _exact(response)["entry"]]

    first_response = client.get("/fhir/Observation", params=params, headers=auth)
    again_response = client.get("/fhir/Observation", params=params, headers=auth)  # remembered: where, and what
    assert again_response.content == first_response.content, "byte for byte (no paging link: one page)"
    first, again = panels(first_response), panels(again_response)
    assert again == first and any(r["interpretation"][1]["coding"][0]["code"] != "green" for r in first)

    changed = client.put(
        f"/monitoring/patients/{cuff_readings}/settings",
        json={
            "thresholds": {"systolic": {"yellow_high": 250, "red_high": 260}, "diastolic": {"yellow_high": 200}},
            "valid_from": (datetime.now(UTC) - timedelta(days=30)).isoformat(),
        },
        headers={**auth, "If-Match": 'W/"0"'},
    )
    assert changed.status_code == 200, changed.text
    after = panels(client.get("/fhir/Observation", params=params, headers=auth))
    assert all(r["interpretation"][1]["coding"][0]["code"] == "green" for r in after), "the new thresholds apply"
    assert all("thresholds version 1" in r["component"][0]["referenceRange"][0]["text"] for r in after)
    _unspliced(runtime)
    assert panels(client.get("/fhir/Observation", params=params, headers=auth)) == after


def test_a_row_stored_with_its_text_beside_the_resource_is_served_from_that_text(
    client, tokens, runtime, cuff_readings
):
    """A SQLite store written before the text was kept once has it in ``served_json`` too (and its resource may be
    another writer's text of the same JSON): the same bytes are served from that text."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL keeps the text beside its jsonb")
    params = {"patient": cuff_readings, "_count": "50"}
    auth = tokens.auth("clinician")
    before = client.get("/fhir/Observation", params=params, headers=auth)
    assert before.status_code == 200
    with runtime.sessions.begin() as session:
        session.execute(text("update observation set served_json = resource"))  # as stored before: the text twice
        for row_id, resource in session.execute(select(m.Observation.id, m.Observation.resource)).all():
            session.execute(  # the resource as another writer spaced it
                text("update observation set resource = :spaced where id = :id"),
                {"spaced": simplejson.dumps(resource, indent=1), "id": row_id},
            )
    after = client.get("/fhir/Observation", params=params, headers=auth)
    entries = before.content.index(b'"entry":[')
    assert after.content[after.content.index(b'"entry":[') :] == before.content[entries:]
