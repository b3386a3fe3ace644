"""Issue 9 regressions: search values that used to match everything or end in a 500, and a CPR typed
where a Patient id goes, which used to be echoed and audited in clear."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients


@pytest.fixture
def one_reading(client, tokens, pilot) -> str:
    [person] = synthetic_patients(1, seed=95)
    patient_id = pilot.enrol(person.cpr)
    pilot.consent(patient_id)
    taken = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    sent = envelope(person, cuff_payload(random.Random(5), taken), datetime.now(UTC))
    assert client.post("/ingest", json=sent, headers=tokens.auth("gateway")).status_code == 201
    return patient_id


@pytest.mark.parametrize("code", ["%", "_", "%|%", "http://loinc.org|%", "8%", "85354_9"])
def test_like_wildcards_in_a_code_match_only_themselves(client, tokens, one_reading, code):
    everything = client.get("/fhir/Observation", headers=tokens.auth("clinician")).json()["total"]
    assert everything > 0
    response = client.get("/fhir/Observation", params={"code": code}, headers=tokens.auth("clinician"))
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [("_count", "١٠"), ("_count", "１０"), ("_offset", str(2**63)), ("_count", "-1"), ("_offset", "1e3")],
)
def test_counts_and_offsets_are_ascii_whole_numbers_or_a_400(client, tokens, one_reading, name, value):
    response = client.get("/fhir/Observation", params={name: value}, headers=tokens.auth("clinician"))
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["expression"] == [name]
    assert "whole number" in outcome["issue"][0]["diagnostics"]


def test_a_cpr_typed_as_a_patient_id_is_neither_echoed_nor_audited(client, runtime, tokens, one_reading):
    cpr = "0101901234"
    for typed in (cpr, "010190-1234"):
        response = client.get(f"/fhir/Patient/{typed}", headers=tokens.auth("clinician"))
        assert response.status_code == 404
        assert typed not in response.text and "0101901234" not in response.text
    with runtime.sessions() as session:
        trail = " ".join(f"{e.entity} {e.detail}" for e in session.scalars(select(m.AuditEvent)))
    assert "Patient/" in trail and "0101901234" not in trail and "010190-1234" not in trail
