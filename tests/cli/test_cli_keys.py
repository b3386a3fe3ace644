"""``homediag keys`` (``homediag/cli/keys.py``): create the key file, rotate keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cli_support import make_deployment, runner

from homediag.cli import app


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite deployment made with the CLI: key file and schema."""
    return make_deployment(tmp_path)


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
