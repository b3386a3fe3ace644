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

            audit.append(session, rt.keys, [audit.Entry("x", "admin", "enrol", "created") for _ in range(3)])
        with rt.engine.connect() as conn:  # someone with database access keeps a copy of the sealed head
            saved = conn.execute(text("select seq, hash, mac from audit_head where id = 0")).one()
        with rt.sessions.begin() as session:
            audit.append(session, rt.keys, [audit.Entry("x", "admin", "enrol", "created")])
    made = runner.invoke(app, ["audit", "checkpoint", "--out", str(tmp_path / "cp.json")], env=deployment)
    assert made.exit_code == 0, made.output
    assert json.loads((tmp_path / "cp.json").read_text())["checkpoint"]["seq"] == 4
    ok = runner.invoke(app, ["audit", "verify", "--checkpoint", str(tmp_path / "cp.json")], env=deployment)
    assert ok.exit_code == 0 and "unchanged" in ok.stdout

    with rt.engine.begin() as conn:
        conn.execute(text("delete from audit_event where seq = 4"))
    removed = runner.invoke(app, ["audit", "verify"], env=deployment)
    assert removed.exit_code == 1 and "removed from the end" in removed.stdout
    with rt.engine.begin() as conn:  # the old sealed head put back: only the checkpoint can tell
        conn.execute(
            text("update audit_head set seq = :s, hash = :h, mac = :m where id = 0"),
            {"s": saved[0], "h": saved[1], "m": saved[2]},
        )
    rt.close()
    assert runner.invoke(app, ["audit", "verify"], env=deployment).exit_code == 0
    caught = runner.invoke(app, ["audit", "verify", "--checkpoint", str(tmp_path / "cp.json")], env=deployment)
    assert caught.exit_code == 1
    assert "truncated" in caught.stdout
