"""Issue 9 regressions, on both engines: bodies that used to end in a 500 and lose the upload (NUL
characters, lone surrogates, JSON nested thousands deep) and search values that crashed the search.
Each is now a 4xx OperationOutcome naming what is wrong and where, and what a gateway sent is kept."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from homediag.ingest.uploadlog import open_upload
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients

GATEWAY_WRITES = [("POST", "/ingest"), ("POST", "/fhir"), ("POST", "/fhir/Observation")]
OTHER_WRITES = [
    ("POST", "/fhir/Patient", "admin"),
    ("POST", "/fhir/Consent", "admin"),
    ("PUT", "/fhir/Consent/some-consent", "admin"),
    ("POST", "/fhir/Observation/$validate", "admin"),
    ("POST", "/sandbox/ble-blood-pressure", "admin"),
]


def _uploads(runtime) -> list[m.Upload]:
    with runtime.sessions() as session:
        return list(session.scalars(select(m.Upload).order_by(m.Upload.received_at)))


def _upload_count(runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(m.Upload)) or 0)


def _outcome(response) -> dict[str, Any]:
    body = response.json()
    outcome = body.get("issues", body) if "issues" in body else body
    assert outcome["resourceType"] == "OperationOutcome", response.text
    return outcome


@pytest.fixture
def person(pilot):
    [p] = synthetic_patients(1, seed=909)
    pilot.consent(pilot.enrol(p.cpr))
    return p


def _envelope(person, minutes_ago: int = 60) -> dict[str, Any]:
    taken = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(minutes=minutes_ago)
    return envelope(person, cuff_payload(random.Random(minutes_ago), taken), datetime.now(UTC))


# -- NUL characters -----------------------------------------------------------------------------
def test_a_nul_in_an_envelope_is_refused_naming_the_field_and_the_envelope_is_kept(client, tokens, runtime, person):
    sent = _envelope(person)
    sent["device"]["serial"] = "SN\u0000-1"
    body = json.dumps(sent).encode()
    response = client.post("/ingest", content=body, headers=tokens.auth("gateway"))
    assert response.status_code == 422, response.text
    issue = response.json()["issues"]["issue"][0]
    assert issue["expression"] == ["envelope.device.serial"] and "NUL" in issue["diagnostics"]
    [upload] = _uploads(runtime)
    assert upload.outcome == "rejected"
    assert open_upload(runtime, upload) == body  # the sealed bytes, exactly as sent
    assert upload.redacted["device"]["serial"] == "SN\\u0000-1"  # the readable copy, escaped


def test_a_nul_in_one_envelope_of_a_list_costs_only_that_envelope(client, tokens, runtime, person):
    bad = _envelope(person, 30)
    bad["adapter"] = "ble-blood-pressure\u0000"
    bad["gateway"]["software"] = "\u0000"
    sent = [_envelope(person, 90), bad, _envelope(person, 10)]
    response = client.post("/ingest", json=sent, headers=tokens.auth("gateway"))
    assert response.status_code == 200, response.text
    assert [r["outcome"] for r in response.json()["results"]] == ["created", "rejected", "created"]
    assert [u.outcome for u in _uploads(runtime)] == ["created", "rejected", "created"]
    rejected = response.json()["results"][1]["issues"]["issue"][0]
    assert rejected["expression"] == ["envelope.adapter"]


@pytest.mark.parametrize(
    ("path", "role", "resource", "where"),
    [
        ("/fhir/Patient", "admin", {"resourceType": "Patient", "name": [{"family": "Nul\u0000sen"}]}, "name[0].family"),
        ("/fhir/Consent", "admin", {"resourceType": "Consent", "status": "active\u0000"}, "status"),
        (
            "/fhir/Observation",
            "gateway",
            {"resourceType": "Observation", "status": "final", "note": [{"text": "a\u0000b"}]},
            "note[0].text",
        ),
        ("/fhir", "gateway", {"resourceType": "Bundle", "type": "transaction", "entry": [{"\u0000": 1}]}, "entry[0]"),
    ],
)
def test_a_nul_in_a_fhir_body_is_a_400_naming_the_place(client, tokens, runtime, path, role, resource, where):
    before = _upload_count(runtime)
    response = client.post(path, json=resource, headers=tokens.auth(role))
    assert response.status_code == 400, response.text
    issue = _outcome(response)["issue"][0]
    assert issue["expression"] == [f"body.{where}"] and "NUL" in issue["diagnostics"]
    if role == "gateway":  # what a gateway sent is kept
        assert _upload_count(runtime) == before + 1
        assert response.headers["X-Upload-Id"]


# -- lone surrogates ----------------------------------------------------------------------------
def test_a_lone_surrogate_in_an_envelope_is_refused_and_kept(client, tokens, runtime, person):
    good = json.dumps(_envelope(person, 20))
    bad = json.dumps(_envelope(person, 40)).replace('"Syntetisk Medico"', '"Syntetisk \\ud800Medico"')
    for body in (bad, f"[{good}, {bad}]"):
        response = client.post("/ingest", content=body.encode(), headers=tokens.auth("gateway"))
        assert response.status_code in (200, 422), response.text
        results = response.json()["results"] if body.startswith("[") else [response.json()]
        issue = results[-1]["issues"]["issue"][0]
        assert results[-1]["outcome"] == "rejected"
        assert issue["expression"] == ["envelope.device.manufacturer"] and "surrogate" in issue["diagnostics"]
    outcomes = [u.outcome for u in _uploads(runtime)]
    assert outcomes == ["rejected", "created", "rejected"]
    assert _uploads(runtime)[0].redacted["device"]["manufacturer"] == "Syntetisk \\ud800Medico"


@pytest.mark.parametrize(
    ("path", "role"),
    [("/fhir", "gateway"), ("/fhir/Observation", "gateway"), ("/fhir/Consent", "admin"), ("/fhir/Patient", "admin")],
)
def test_a_lone_surrogate_in_a_fhir_body_is_a_400(client, tokens, path, role):
    body = '{"resourceType": "Observation", "status": "final", "note": [{"text": "\\udc00"}]}'
    response = client.post(path, content=body.encode(), headers=tokens.auth(role))
    assert response.status_code == 400, response.text
    issue = _outcome(response)["issue"][0]
    assert "surrogate" in issue["diagnostics"] and issue["expression"] == ["body.note[0].text"]


# -- deep nesting -------------------------------------------------------------------------------
def _deep(levels: int) -> bytes:
    return ('{"resourceType": "Observation", "a": ' + "[" * levels + "]" * levels + "}").encode()


@pytest.mark.parametrize("levels", [100, 5000, 100_000])
@pytest.mark.parametrize(("method", "path"), GATEWAY_WRITES)
def test_deep_nesting_on_a_gateway_endpoint_is_a_400_and_the_body_is_kept(
    client, tokens, runtime, method, path, levels
):
    before = _upload_count(runtime)
    response = client.request(method, path, content=_deep(levels), headers=tokens.auth("gateway"))
    assert response.status_code == 400, response.text
    issue = _outcome(response)["issue"][0]
    assert "nested deeper than 64 levels" in issue["diagnostics"]
    assert _upload_count(runtime) == before + 1


@pytest.mark.parametrize("levels", [100, 5000])
@pytest.mark.parametrize(("method", "path", "role"), OTHER_WRITES)
def test_deep_nesting_on_every_other_write_endpoint_is_a_400(client, tokens, method, path, role, levels):
    response = client.request(method, path, content=_deep(levels), headers=tokens.auth(role))
    assert response.status_code == 400, response.text
    assert "nested deeper than 64 levels" in _outcome(response)["issue"][0]["diagnostics"]


def test_a_consent_nested_2000_deep_is_a_400(client, tokens):
    consent = (
        '{"resourceType": "Consent", "status": "active"' + ', "extension": [{"url": "x"' * 2000 + "}]" * 2000 + "}"
    )
    response = client.post("/fhir/Consent", content=consent.encode(), headers=tokens.auth("admin"))
    assert response.status_code == 400, response.text
    assert "nested deeper" in response.json()["issue"][0]["diagnostics"]


def test_an_ordinary_phd_bundle_is_not_too_deep(client, tokens):
    from tests.conftest import FIXTURES

    bundle = (FIXTURES / "phd-ig" / "bundle-example-1.json").read_bytes()
    response = client.post("/fhir", content=bundle, headers=tokens.auth("gateway"))
    assert "nested deeper" not in response.text


# -- search values ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("date", "9999"),
        ("date", "9999-12-31"),
        ("date", "le9999-12-31T23:59:59"),
        ("date", "0000"),
        ("date", "0001-01-01T00:00:00+14:00"),
        ("date", "2026-01-01T10:00:00+99:00"),
        ("date", "2026-01-01T10:00:00-24:30"),
        ("date", "٢٠٢٦"),
        ("date", "2026-01-01T10:00:00.1234567890123456789"),
        ("code", ",".join(str(n) for n in range(3000))),
        ("category", ",".join("vital-signs" for _ in range(500))),
    ],
)
def test_search_values_out_of_range_or_too_many_are_a_400_naming_the_parameter(client, tokens, name, value):
    response = client.get("/fhir/Observation", params={name: value}, headers=tokens.auth("clinician"))
    assert response.status_code == 400, response.text
    issue = _outcome(response)["issue"][0]
    assert issue["expression"] == [name]


def test_a_code_repeated_beyond_the_limit_is_a_400(client, tokens):
    params = [("code", f"c{n}") for n in range(101)]
    response = client.get("/fhir/Observation", params=params, headers=tokens.auth("clinician"))
    assert response.status_code == 400
    assert "100 values" in response.json()["issue"][0]["diagnostics"]


def test_search_values_at_the_edges_still_search(client, tokens):
    for value in ("9998", "0002", "2026-01-01T10:00:00+14:00", "2026-01-01T10:00:00-12:00"):
        response = client.get("/fhir/Observation", params={"date": value}, headers=tokens.auth("clinician"))
        assert response.status_code == 200, (value, response.text)
    codes = ",".join(str(n) for n in range(100))
    assert client.get("/fhir/Observation", params={"code": codes}, headers=tokens.auth("clinician")).status_code == 200


@pytest.mark.parametrize(
    ("url", "role", "where"),
    [
        ("/fhir/Observation/%00", "clinician", "path"),
        ("/fhir/Patient/a%00", "clinician", "path"),
        ("/fhir/Device/a%00", "admin", "path"),
        ("/fhir/Consent/a%00/_history", "admin", "path"),
        ("/uploads/a%00", "admin", "path"),
        ("/fhir/AuditEvent?type=a%00", "admin", "type"),
        ("/fhir/Observation?code=1%00", "clinician", "code"),
    ],
)
def test_a_nul_in_a_path_or_a_query_is_a_400_naming_it(client, tokens, url, role, where):
    response = client.get(url, headers=tokens.auth(role))
    assert response.status_code == 400, response.text
    issue = _outcome(response)["issue"][0]
    assert issue["expression"] == [where] and "NUL" in issue["diagnostics"]
