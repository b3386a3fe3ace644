"""The ``homediag`` command as a whole: help for every command, the key file it needs, the one error path of a
ServiceError, and once as a real process (the console script and ``python -m homediag.cli``).

Each command group is tested beside it: ``test_cli_<group>.py`` for ``homediag/cli/<group>.py``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import BP_FULL, check_bundle, issues, runner

from homediag.cli import app


def test_commands_need_the_key_file(tmp_path):
    env = {
        "HOMEDIAG_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "HOMEDIAG_KEY_FILE": str(tmp_path / "missing.json"),
    }
    result = runner.invoke(app, ["audit", "verify"], env=env)
    assert result.exit_code != 0
    assert "homediag keys init" in result.stderr


def test_a_service_error_from_any_command_ends_on_one_error_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ServiceError is not caught per command: the root command prints each issue's diagnostics to stderr, exit 1."""
    from homediag.access import AccessService
    from homediag.errors import Unprocessable
    from homediag.fhir_profiles import Issue

    def refuse(*args: object) -> None:
        raise Unprocessable(
            issues=[
                Issue("error", "invalid", "the first thing wrong", "Consent.patient"),
                Issue("error", "invalid", "the second thing wrong", None),
            ]
        )

    monkeypatch.setattr("homediag.cli.consents.runtime", lambda: None)
    monkeypatch.setattr(AccessService, "search_consents", refuse)
    result = runner.invoke(app, ["consents", "list"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: the first thing wrong\nerror: the second thing wrong\n"
    assert isinstance(result.exception, SystemExit)  # ended by the CLI, not an uncaught exception


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
