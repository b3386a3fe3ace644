"""``homediag audit`` (``homediag/cli/audit.py``): a signed checkpoint, and verify finding a truncated tail with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import api_client, make_deployment, runner
from sqlalchemy import text

from homediag.cli import app


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite deployment made with the CLI: key file and schema."""
    return make_deployment(tmp_path)


def test_audit_checkpoint_then_verify_finds_a_truncated_tail(deployment, tmp_path):
    with api_client(deployment) as client:
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
