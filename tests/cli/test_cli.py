"""The ``homediag`` command: adapters, keys, users, db and audit, through typer's CliRunner and once
as a real process (the console script and ``python -m homediag.cli``)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import text
from typer.testing import CliRunner

from homediag.api.app import create_app
from homediag.cli import app
from homediag.runtime import Runtime
from homediag.settings import Settings, get_settings

VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "ble" / "third-party-vectors.json").read_text()
)
BP_FULL = next(v["hex"] for v in VECTORS["characteristics"] if v["id"] == "nordic-bp-full")
runner = CliRunner()


def issues(stdout: str) -> list[dict]:
    outcome = json.loads(stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome["issue"]


def check_bundle(stdout: str) -> Bundle:
    document = json.loads(stdout)
    bundle = Bundle.model_validate(document)  # full R4 structural validation, Observations included
    assert bundle.type == "collection"
    assert [type(e.resource).__name__ for e in bundle.entry] == ["Observation"] * 3  # BP, pulse, status
    return bundle


@pytest.fixture(autouse=True)
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_adapters_list_names_the_blood_pressure_adapter():
    result = runner.invoke(app, ["adapters", "list"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^ble-blood-pressure\s+.*0x2A35", result.stdout, re.M)


@pytest.mark.parametrize("source", ["hex", "file"])
def test_convert_prints_a_valid_collection_bundle(tmp_path, source):
    if source == "hex":
        args = ["--hex", BP_FULL]
    else:
        (tmp_path / "payload.bin").write_bytes(bytes.fromhex(BP_FULL))
        args = ["--file", str(tmp_path / "payload.bin")]
    result = runner.invoke(app, ["adapters", "convert", "ble-blood-pressure", *args])
    assert result.exit_code == 0, result.output
    bundle = check_bundle(result.stdout)
    bp = bundle.entry[0].resource
    assert [float(c.valueQuantity.value) for c in bp.component] == [138, 88, 120]


@pytest.mark.parametrize(
    ("adapter", "hex_payload", "says"),
    [
        ("ble-blood-pressure", BP_FULL[:-2], ["measurement_status", "byte offset 17"]),
        ("ble-blood-pressure", BP_FULL[:20], ["timestamp.day", "byte offset 10"]),
        ("ble-blood-pressure", "1e8a0zz", ["not valid hexadecimal"]),
        ("ble-glucose-meter", BP_FULL, ["no adapter 'ble-glucose-meter'", "ble-blood-pressure"]),
    ],
)
def test_convert_refuses_with_an_operation_outcome(adapter, hex_payload, says):
    result = runner.invoke(app, ["adapters", "convert", adapter, "--hex", hex_payload])
    assert result.exit_code != 0
    found = issues(result.stdout)
    assert found[0]["severity"] == "error"
    assert all(s in found[0]["diagnostics"] for s in says), found


def test_keys_init_writes_owner_only_file_and_never_overwrites(tmp_path):
    path = tmp_path / "secrets" / "keys.json"
    result = runner.invoke(app, ["keys", "init", "--path", str(path)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = path.read_text()
    assert {"pseudonym", "vault", "audit"} <= set(json.loads(keys))

    again = runner.invoke(app, ["keys", "init", "--path", str(path)])
    assert again.exit_code != 0
    assert "exists" in again.stderr and "not replaced" in again.stderr
    assert path.read_text() == keys


@pytest.fixture
def deployment(tmp_path):
    """A fresh SQLite deployment made with the CLI: key file and schema."""
    env = {
        "HOMEDIAG_DATABASE_URL": f"sqlite:///{tmp_path / 'homediag.sqlite3'}",
        "HOMEDIAG_KEY_FILE": str(tmp_path / "keys.json"),
    }
    for args in (["keys", "init"], ["db", "upgrade"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "keys.json").exists()
    return env


def _api(env: dict[str, str]) -> TestClient:
    settings = Settings(
        database_url=env["HOMEDIAG_DATABASE_URL"], key_file=Path(env["HOMEDIAG_KEY_FILE"]), _env_file=None
    )  # type: ignore[call-arg]
    return TestClient(create_app(Runtime.from_settings(settings)))


def test_users_add_prints_a_token_that_the_api_accepts_and_audit_verify_checks_the_chain(deployment):
    result = runner.invoke(app, ["users", "add", "--role", "clinician", "--name", "Dr. Syntetisk"], env=deployment)
    assert result.exit_code == 0, result.output
    user_id, role, token = result.stdout.strip().split("\t")
    assert role == "clinician" and user_id.startswith("clinician-")

    with _api(deployment) as client:
        assert client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
        rt = client.app.state.runtime

    verified = runner.invoke(app, ["audit", "verify"], env=deployment)
    assert verified.exit_code == 0, verified.output
    assert "intact: 1 records" in verified.stdout  # the search above was audited

    with rt.engine.begin() as conn:
        conn.execute(text("update audit_event set outcome = 'deny' where seq = 1"))
    rt.close()
    broken = runner.invoke(app, ["audit", "verify"], env=deployment)
    assert broken.exit_code == 1
    assert "record 1 was altered" in broken.stdout


def test_users_add_refuses_an_unknown_role(deployment):
    result = runner.invoke(app, ["users", "add", "--role", "superuser", "--name", "x"], env=deployment)
    assert result.exit_code != 0
    assert "role must be one of" in result.stderr and "superuser" in result.stderr


def test_commands_need_the_key_file(tmp_path):
    env = {
        "HOMEDIAG_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "HOMEDIAG_KEY_FILE": str(tmp_path / "missing.json"),
    }
    result = runner.invoke(app, ["audit", "verify"], env=env)
    assert result.exit_code != 0
    assert "homediag keys init" in result.stderr


def _flat(help_text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", help_text).split())


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ([], "the home-diagnostics pilot platform"),
        (["serve"], "Serve the API"),
        (["demo"], "Fresh demo pilot on SQLite"),
        (["adapters", "list"], "The adapter ids, with what each reads"),
        (["adapters", "convert"], "print a FHIR Bundle (collection) of its Observations"),
        (["keys", "init"], "Create the key file"),
        (["users", "add"], "print its token, once"),
        (["audit", "verify"], "Walk the audit hash chain"),
        (["db", "upgrade"], "Create or migrate the database schema"),
    ],
)
def test_help_says_what_each_command_does(command, says):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert says in _flat(result.stdout)


@pytest.mark.parametrize(
    "launcher",
    [[str(Path(sys.executable).with_name("homediag"))], [sys.executable, "-m", "homediag.cli"]],
    ids=["console-script", "python-m"],
)
def test_runs_as_a_real_process(tmp_path, launcher):
    ok = subprocess.run(
        [*launcher, "adapters", "convert", "ble-blood-pressure", "--hex", BP_FULL],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    check_bundle(ok.stdout)
    refused = subprocess.run(
        [*launcher, "adapters", "convert", "ble-blood-pressure", "--hex", BP_FULL[:-2]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert "measurement_status" in issues(refused.stdout)[0]["diagnostics"]


PHD = Path(__file__).resolve().parents[1] / "fixtures" / "phd-ig"


def test_profiles_validate_passes_phd_ig_examples():
    result = runner.invoke(
        app,
        ["profiles", "validate", str(PHD / "compound-numeric-blood-pressure.json"), str(PHD / "bundle-example-1.json")],
    )
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    assert outcome["resourceType"] == "OperationOutcome"
    assert not [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def test_profiles_validate_names_the_file_and_path_of_an_error(tmp_path):
    broken = json.loads((PHD / "compound-numeric-blood-pressure.json").read_text())
    broken["component"][0]["valueQuantity"]["code"] = "mmHg"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = runner.invoke(app, ["profiles", "validate", str(path)])
    assert result.exit_code == 1
    errors = [i for i in json.loads(result.output)["issue"] if i["severity"] == "error"]
    assert errors and errors[0]["expression"] == [f"{path}: Observation.component[0].valueQuantity.code"]


def test_profiles_validate_refuses_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "not.json"
    path.write_text("{nope")
    result = runner.invoke(app, ["profiles", "validate", str(path)])
    assert result.exit_code == 1
    assert "not JSON" in result.output


def test_audit_checkpoint_then_verify_finds_a_truncated_tail(deployment, tmp_path):
    with _api(deployment) as client:
        rt = client.app.state.runtime
        with rt.sessions.begin() as session:
            from homediag import audit

            audit.append(session, rt.keys, [audit.Entry("x", "admin", "enrol", "created") for _ in range(4)])
    made = runner.invoke(app, ["audit", "checkpoint", "--out", str(tmp_path / "cp.json")], env=deployment)
    assert made.exit_code == 0, made.output
    assert json.loads((tmp_path / "cp.json").read_text())["checkpoint"]["seq"] == 4
    ok = runner.invoke(app, ["audit", "verify", "--checkpoint", str(tmp_path / "cp.json")], env=deployment)
    assert ok.exit_code == 0 and "unchanged" in ok.stdout

    with rt.engine.begin() as conn:
        conn.execute(text("delete from audit_event where seq = 4"))
        conn.execute(text("update audit_head set seq = 3, hash = (select hash from audit_event where seq = 3)"))
    rt.close()
    assert runner.invoke(app, ["audit", "verify"], env=deployment).exit_code == 0
    caught = runner.invoke(app, ["audit", "verify", "--checkpoint", str(tmp_path / "cp.json")], env=deployment)
    assert caught.exit_code == 1
    assert "truncated" in caught.stdout


def test_keys_rotate_replaces_the_key_file_and_needs_a_choice(deployment, tmp_path):
    before = json.loads((tmp_path / "keys.json").read_text())
    refused = runner.invoke(app, ["keys", "rotate"], env=deployment)
    assert refused.exit_code == 2 and "--vault" in refused.stderr
    rotated = runner.invoke(app, ["keys", "rotate", "--vault", "--pseudonym"], env=deployment)
    assert rotated.exit_code == 0, rotated.output
    after = json.loads((tmp_path / "keys.json").read_text())
    assert after["vault"]["kid"] != before["vault"]["kid"] and after["pseudonym"]["kid"] != before["pseudonym"]["kid"]
    assert after["vault_previous"][0]["kid"] == before["vault"]["kid"]
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert runner.invoke(app, ["audit", "verify"], env=deployment).exit_code == 0


def test_revoked_and_expired_tokens_stop_working(deployment):
    made = runner.invoke(app, ["users", "add", "--role", "clinician", "--name", "Dr. Revoke"], env=deployment)
    user_id, _, token = made.stdout.strip().split("\t")
    expired = runner.invoke(
        app, ["users", "add", "--role", "clinician", "--name", "Dr. Expired", "--expires-days", "0"], env=deployment
    )
    expired_token = expired.stdout.strip().split("\t")[2]
    with _api(deployment) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/fhir/Observation", headers=auth).status_code == 200
        assert client.get("/fhir/Observation", headers={"Authorization": f"Bearer {expired_token}"}).status_code == 401
        revoked = runner.invoke(app, ["users", "revoke", user_id], env=deployment)
        assert revoked.exit_code == 0, revoked.output
        assert client.get("/fhir/Observation", headers=auth).status_code == 401
        client.app.state.runtime.close()
    listing = runner.invoke(app, ["users", "list"], env=deployment).stdout
    assert f"{user_id}\tclinician" in listing and "revoked" in listing and "expired" in listing
    assert runner.invoke(app, ["users", "revoke", "nobody"], env=deployment).exit_code == 1


def test_consents_from_the_command_line(deployment):
    with _api(deployment) as client:
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


def test_care_teams_and_gateways_from_the_command_line(deployment):
    clinician = runner.invoke(
        app, ["users", "add", "--role", "clinician", "--name", "Dr. Team"], env=deployment
    ).stdout.split("\t")[0]
    gateway = runner.invoke(
        app, ["users", "add", "--role", "gateway", "--name", "tablet-9"], env=deployment
    ).stdout.split("\t")[0]
    with _api(deployment) as client:
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
