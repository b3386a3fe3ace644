"""``homediag careteams`` and ``homediag gateways`` (``homediag/cli/care.py``): the care relations beyond consent."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import api_client, make_deployment, runner

from homediag.cli import app


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite deployment made with the CLI: key file and schema."""
    return make_deployment(tmp_path)


def test_care_teams_and_gateways_from_the_command_line(deployment):
    clinician = runner.invoke(
        app, ["users", "add", "--role", "clinician", "--name", "Dr. Team"], env=deployment
    ).stdout.split("\t")[0]
    gateway = runner.invoke(
        app, ["users", "add", "--role", "gateway", "--name", "tablet-9"], env=deployment
    ).stdout.split("\t")[0]
    with api_client(deployment) as client:
        rt = client.app.state.runtime
        from homediag.enrolment import enrol_patient
        from homediag.users import Principal

        patient = enrol_patient(
            rt,
            Principal("a", "a", "admin", None),
            {"resourceType": "Patient", "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": "0101902005"}]},
        ).patient
        rt.close()
    team = runner.invoke(app, ["careteams", "create", "Hjemmemonitorering"], env=deployment)
    assert team.exit_code == 0, team.output
    team_id = team.stdout.strip()
    assert runner.invoke(app, ["careteams", "add-member", team_id, clinician], env=deployment).exit_code == 0
    assert runner.invoke(app, ["careteams", "add-patient", team_id, patient.id], env=deployment).exit_code == 0
    assert runner.invoke(app, ["gateways", "assign", gateway, patient.id], env=deployment).exit_code == 0
    wrong = runner.invoke(app, ["careteams", "add-member", team_id, gateway], env=deployment)
    assert wrong.exit_code == 1 and "no clinician" in wrong.stderr
    assert runner.invoke(app, ["gateways", "assign", gateway, "nobody"], env=deployment).exit_code == 1
    allowed = runner.invoke(app, ["gateways", "allow-device", gateway, "SYN-BPM-00042"], env=deployment)
    assert allowed.exit_code == 0 and "SYN-BPM-00042" in allowed.stdout
    assert "any device" in runner.invoke(app, ["gateways", "allow-device", gateway, "*"], env=deployment).stdout
    assert runner.invoke(app, ["audit", "verify"], env=deployment).exit_code == 0
