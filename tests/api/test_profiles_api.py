"""The profiles through the API and the CLI: $validate, StructureDefinition reads, the CapabilityStatement."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Tokens
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from homediag.cli import app
from homediag.fhir_profiles.profiles import PROFILES

PHD = Path(__file__).parents[1] / "fixtures" / "phd-ig"
BP = json.loads((PHD / "compound-numeric-blood-pressure.json").read_text())


def test_validate_operation_returns_the_outcome_and_stores_nothing(client: TestClient, tokens: Tokens) -> None:
    ok = client.post("/fhir/Observation/$validate", json=BP, headers=tokens.auth("gateway"))
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("application/fhir+json")
    assert not [i for i in ok.json()["issue"] if i["severity"] == "error"]

    broken = json.loads(json.dumps(BP))
    broken["component"][1]["valueQuantity"]["code"] = "mmHg"
    outcome = client.post(
        "/fhir/Observation/$validate",
        json={"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": broken}]},
        headers=tokens.auth("clinician"),
    ).json()
    errors = [i for i in outcome["issue"] if i["severity"] == "error"]
    assert ["Observation.component[1].valueQuantity.code"] in [e["expression"] for e in errors]

    search = client.get("/fhir/Observation", headers=tokens.auth("clinician")).json()
    assert search["total"] == 0


def test_validate_needs_a_token_and_a_resource(client: TestClient, tokens: Tokens) -> None:
    assert client.post("/fhir/Observation/$validate", json=BP).status_code == 401
    empty = client.post(
        "/fhir/Observation/$validate", json={"resourceType": "Parameters"}, headers=tokens.auth("gateway")
    )
    assert empty.status_code == 400
    assert empty.json()["resourceType"] == "OperationOutcome"


def test_structure_definitions_are_served_and_listed_in_the_capability_statement(client: TestClient) -> None:
    capability = client.get("/fhir/metadata").json()
    observation = next(r for r in capability["rest"][0]["resource"] if r["type"] == "Observation")
    assert set(observation["supportedProfile"]) == {p.url for p in PROFILES.values()}
    for url in observation["supportedProfile"]:
        sd = client.get(f"/fhir/StructureDefinition/{url.rsplit('/', 1)[1]}")
        assert sd.status_code == 200
        assert sd.json()["url"] == url
    listed = client.get("/fhir/StructureDefinition").json()
    assert listed["total"] == len(PROFILES)
    missing = client.get("/fhir/StructureDefinition/homediag-unicorn")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_cli_lists_the_profiles() -> None:
    result = CliRunner().invoke(app, ["profiles", "list"])
    assert result.exit_code == 0
    assert "homediag-body-temperature" in result.output and "8310-5" in result.output


def test_cli_publish_writes_what_the_repository_holds(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["profiles", "publish", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = Path(__file__).resolve().parents[2]
    assert (tmp_path / "docs" / "profiles.md").read_text() == (root / "docs" / "profiles.md").read_text()
    assert len(list((tmp_path / "fhir_profiles" / "structuredefinitions").glob("*.json"))) == len(PROFILES)


def test_ingest_writes_npu_codings_with_the_configured_system(
    runtime, client: TestClient, tokens: Tokens, pilot
) -> None:  # type: ignore[no-untyped-def]
    import random
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from homediag.fhir_profiles.terminology import NPU_MEDCOM
    from homediag.synthetic import cuff_payload, envelope, synthetic_patients

    runtime.settings = runtime.settings.model_copy(update={"npu_system": NPU_MEDCOM})
    person = synthetic_patients(1, seed=7)[0]
    patient_id = pilot.enrol(person.cpr)
    pilot.consent(patient_id)
    taken = datetime.now(ZoneInfo("Europe/Copenhagen")).replace(microsecond=0) - timedelta(hours=1)
    sent = client.post(
        "/ingest",
        json=envelope(person, cuff_payload(random.Random(1), taken.replace(tzinfo=None)), taken),
        headers=tokens.auth("gateway"),
    )
    assert sent.status_code == 201, sent.text
    pulse = client.get(
        "/fhir/Observation", params={"patient": patient_id, "code": "8867-4"}, headers=tokens.auth("clinician")
    ).json()["entry"][0]["resource"]
    assert {"system": NPU_MEDCOM, "code": "NPU21692"} in [
        {k: c[k] for k in ("system", "code")} for c in pulse["code"]["coding"]
    ]
