"""``homediag consents`` (``homediag/cli/consents.py``): add, list and withdraw; unknown patients and consents."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import api_client, make_deployment, runner

from homediag.cli import app


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite deployment made with the CLI: key file and schema."""
    return make_deployment(tmp_path)


def test_consents_from_the_command_line(deployment):
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
    added = runner.invoke(
        app,
        [
            "consents",
            "add",
            "--patient",
            patient.id,
            "--purpose",
            "TREAT",
            "--purpose",
            "HRESCH",
            "--end",
            "2099-12-31",
        ],
        env=deployment,
    )
    assert added.exit_code == 0, added.output
    consent_id = added.stdout.strip()
    listed = runner.invoke(app, ["consents", "list", "--patient", patient.id], env=deployment).stdout
    assert f"{consent_id}\tPatient/{patient.id}\tactive\tv1\tHRESCH,TREAT" in listed
    withdrawn = runner.invoke(app, ["consents", "withdraw", consent_id], env=deployment)
    assert withdrawn.exit_code == 0 and "version 2" in withdrawn.stdout
    assert "\tinactive\tv2\t" in runner.invoke(app, ["consents", "list"], env=deployment).stdout
    bad = runner.invoke(app, ["consents", "add", "--patient", "nobody", "--purpose", "TREAT"], env=deployment)
    assert bad.exit_code == 1 and "enrolled patient" in bad.stderr
    assert runner.invoke(app, ["consents", "withdraw", "nothing"], env=deployment).exit_code == 1
