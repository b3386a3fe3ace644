"""``homediag users`` (``homediag/cli/users.py``): tokens the API accepts, unknown roles, revoked and expired tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import api_client, make_deployment, runner
from sqlalchemy import text

from homediag.cli import app


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite deployment made with the CLI: key file and schema."""
    return make_deployment(tmp_path)


def test_users_add_prints_a_token_that_the_api_accepts_and_audit_verify_checks_the_chain(deployment):
    result = runner.invoke(app, ["users", "add", "--role", "clinician", "--name", "Dr. Syntetisk"], env=deployment)
    assert result.exit_code == 0, result.output
    user_id, role, token = result.stdout.strip().split("\t")
    assert role == "clinician" and user_id.startswith("clinician-")

    with api_client(deployment) as client:
        assert client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
        rt = client.app.state.runtime

    verified = runner.invoke(app, ["audit", "verify"], env=deployment)
    assert verified.exit_code == 0, verified.output
    assert "intact: 2 records" in verified.stdout  # the user made and the search above were audited

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


def test_revoked_and_expired_tokens_stop_working(deployment):
    made = runner.invoke(app, ["users", "add", "--role", "clinician", "--name", "Dr. Revoke"], env=deployment)
    user_id, _, token = made.stdout.strip().split("\t")
    expired = runner.invoke(
        app, ["users", "add", "--role", "clinician", "--name", "Dr. Expired", "--expires-days", "0"], env=deployment
    )
    expired_token = expired.stdout.strip().split("\t")[2]
    with api_client(deployment) as client:
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
