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


def _clinician(deployment: dict[str, str]) -> str:
    made = runner.invoke(app, ["users", "add", "--role", "clinician", "--name", "Dr. Link"], env=deployment)
    assert made.exit_code == 0, made.output
    return str(made.stdout.split("\t")[0])


def test_signin_link_signs_the_person_in_once_and_the_audit_chain_records_it_without_the_link(deployment):
    user_id = _clinician(deployment)
    made = runner.invoke(app, ["users", "signin-link", user_id, "--base-url", "http://testserver/"], env=deployment)
    assert made.exit_code == 0, made.output
    link = made.stdout.strip()
    assert link.startswith("http://testserver/app/signin/link/")
    assert "once" in made.stderr and user_id in made.stderr
    path = link.removeprefix("http://testserver")

    with api_client(deployment) as browser:
        browser.base_url = "https://testserver"  # the session cookie is Secure
        signed_in = browser.get(path, follow_redirects=False)
        assert signed_in.status_code == 303 and "hd_session" in signed_in.cookies
        worklist = browser.get("/app/worklist")
        assert worklist.status_code == 200 and "Dr. Link" in worklist.text
        browser.cookies.clear()
        assert browser.get(path, follow_redirects=False).status_code == 401  # used up
        rt = browser.app.state.runtime
        with rt.engine.connect() as conn:
            rows = conn.execute(text("select action, actor, entity, detail from audit_event")).all()
        rt.close()
    assert ("signin-link", "cli-admin", f"user/{user_id}") in {(a, actor, e) for a, actor, e, _ in rows}
    token = path.rsplit("/", 1)[1]
    assert not any(token in str(value) for row in rows for value in row)
    assert runner.invoke(app, ["audit", "verify"], env=deployment).exit_code == 0


def test_signin_link_without_a_base_url_prints_the_path_and_says_where_to_open_it(deployment):
    made = runner.invoke(app, ["users", "signin-link", _clinician(deployment), "--minutes", "3"], env=deployment)
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("/app/signin/link/")
    assert "Valid 3 minutes" in made.stderr and "--base-url" in made.stderr


def test_signin_link_is_refused_for_whoever_may_not_sign_in(deployment):
    gateway = runner.invoke(app, ["users", "add", "--role", "gateway", "--name", "tablet-1"], env=deployment)
    gateway_id = gateway.stdout.split("\t")[0]
    revoked = _clinician(deployment)
    assert runner.invoke(app, ["users", "revoke", revoked], env=deployment).exit_code == 0
    for user_id, said in (
        (gateway_id, "who may sign in to the web app"),
        ("clinician-nobody", "no user 'clinician-nobody'"),
        (revoked, "is revoked"),
    ):
        refused = runner.invoke(app, ["users", "signin-link", user_id], env=deployment)
        assert refused.exit_code == 1 and said in refused.stderr and refused.stdout == ""
    for minutes in ("0", "721"):
        wrong = runner.invoke(
            app, ["users", "signin-link", _clinician(deployment), "--minutes", minutes], env=deployment
        )
        assert wrong.exit_code == 1 and f"1 to 720 minutes, not {minutes}" in wrong.stderr
