"""``homediag monitoring`` (``homediag/cli/monitoring.py``): settings, status, acknowledgements as a clinician."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cli_support import api_client, make_deployment, runner

from homediag.adapters.devices.blood_pressure import encode
from homediag.adapters.devices.readings import DeviceTime
from homediag.cli import app
from homediag.synthetic import envelope, synthetic_patients


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, str]:
    return make_deployment(tmp_path)


def _user(env: dict[str, str], role: str, name: str) -> tuple[str, str]:
    result = runner.invoke(app, ["users", "add", "--role", role, "--name", name], env=env)
    assert result.exit_code == 0, result.output
    user_id, _role, token = result.stdout.strip().split("\t")[:3]
    return user_id, token


def test_a_clinician_sets_thresholds_sees_status_and_acknowledges_from_the_command_line(deployment, tmp_path):
    env = deployment
    clinician, _ = _user(env, "clinician", "Dr. Monitor")
    outsider, _ = _user(env, "clinician", "Dr. Elsewhere")
    gateway, gateway_token = _user(env, "gateway", "tablet-12")
    synthetic = synthetic_patients(1, seed=44)[0]
    with api_client(env) as client:
        rt = client.app.state.runtime
        from homediag.enrolment import enrol_patient
        from homediag.users import Principal

        patient = enrol_patient(
            rt,
            Principal("a", "a", "admin", None),
            {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": synthetic.cpr}]},
        ).patient.id
        team = runner.invoke(app, ["careteams", "create", "Hjemmemonitorering"], env=env).stdout.strip()
        for args in (
            ["careteams", "add-member", team, clinician],
            ["careteams", "add-patient", team, patient],
            ["gateways", "assign", gateway, patient],
            ["gateways", "allow-device", gateway, "*"],
            ["consents", "add", "--patient", patient, "--purpose", "TREAT"],
        ):
            assert runner.invoke(app, args, env=env).exit_code == 0, args
        taken = datetime.now(UTC).astimezone(ZoneInfo("Europe/Copenhagen")) - timedelta(hours=2)
        payload = encode(
            (Decimal(138), Decimal(80), Decimal(99)),
            timestamp=DeviceTime(taken.year, taken.month, taken.day, taken.hour, taken.minute, taken.second),
            user_id=1,
        )
        sent = client.post(
            "/ingest",
            json=envelope(synthetic, payload, datetime.now(UTC)),
            headers={"Authorization": f"Bearer {gateway_token}"},
        )
        assert sent.status_code == 201, sent.text
        rt.close()

    status = runner.invoke(app, ["monitoring", "status", patient, "--clinician", clinician, "--days", "1"], env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["colour"] == "yellow"  # 138 >= 135

    proposal = tmp_path / "proposal.json"
    proposal.write_text(json.dumps({"thresholds": {"systolic": {"yellow_high": 140, "red_high": 180}}}))
    preview = runner.invoke(
        app, ["monitoring", "preview", patient, "--clinician", clinician, "--file", str(proposal)], env=env
    )
    assert preview.exit_code == 0, preview.output
    assert (json.loads(preview.stdout)["current"]["alerts"], json.loads(preview.stdout)["alerts"]) == (1, 0)

    changed = runner.invoke(
        app,
        ["monitoring", "set", patient, "--clinician", clinician, "--version", "0", "--file", str(proposal)]
        + ["--valid-from", (datetime.now(UTC) - timedelta(days=1)).isoformat(), "--note", "aftalt med patienten"],
        env=env,
    )
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["version"] == 1
    stale = runner.invoke(
        app, ["monitoring", "set", patient, "--clinician", clinician, "--version", "0", "--group", "copd"], env=env
    )
    assert stale.exit_code == 1 and "version 1, not 0" in stale.stderr

    status = runner.invoke(app, ["monitoring", "status", patient, "--clinician", clinician, "--days", "1"], env=env)
    assert json.loads(status.stdout)["colour"] == "green"

    ack = runner.invoke(
        app, ["monitoring", "acknowledge", patient, "--clinician", clinician, "--all-green", "--days", "1"], env=env
    )
    assert ack.exit_code == 0, ack.output
    task = json.loads(ack.stdout)
    assert task["resourceType"] == "Task" and len(task["input"]) == 1
    worklist = runner.invoke(app, ["monitoring", "worklist", "--clinician", clinician], env=env)
    assert json.loads(worklist.stdout)[0]["last_review"]["task"] == f"Task/{task['id']}"

    times = runner.invoke(app, ["monitoring", "review-times"], env=env)
    assert times.exit_code == 0 and json.loads(times.stdout)["green"]["from_reading"]["count"] == 1

    # a clinician outside the team is told the patient is unknown; a non-clinician is refused
    hidden = runner.invoke(app, ["monitoring", "status", patient, "--clinician", outsider], env=env)
    assert hidden.exit_code == 1 and f"Patient/{patient} is not known" in hidden.stderr
    assert runner.invoke(app, ["monitoring", "status", patient, "--clinician", gateway], env=env).exit_code == 2
    neither = runner.invoke(app, ["monitoring", "acknowledge", patient, "--clinician", clinician], env=env)
    assert neither.exit_code == 2 and "--all-green" in neither.stderr
    assert runner.invoke(app, ["audit", "verify"], env=env).exit_code == 0
