"""What the CLI tests share (imported by name: ``tests/cli`` is on ``sys.path`` while pytest imports its tests).

``runner`` reads the ``HOMEDIAG_*`` settings afresh on every run (``get_settings`` is cached per process, and each
test deploys to its own folder); ``make_deployment`` makes a fresh SQLite deployment with the CLI; ``api_client``
serves the API over it in process; ``BP_FULL``, ``issues`` and ``check_bundle``: a blood-pressure payload and the
checks of what ``homediag adapters convert`` prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from typer.testing import CliRunner

from homediag.api.app import create_app
from homediag.cli import app
from homediag.runtime import Runtime
from homediag.settings import Settings, get_settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VECTORS = json.loads((FIXTURES / "ble" / "third-party-vectors.json").read_text())
BP_FULL = next(v["hex"] for v in VECTORS["characteristics"] if v["id"] == "nordic-bp-full")


class FreshSettingsRunner(CliRunner):
    """A CliRunner whose every run reads the settings from its ``env`` (the settings cache is cleared around it)."""

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        get_settings.cache_clear()
        try:
            return super().invoke(*args, **kwargs)
        finally:
            get_settings.cache_clear()


runner = FreshSettingsRunner()


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


def make_deployment(tmp_path: Path) -> dict[str, str]:
    """A fresh SQLite deployment made with the CLI: key file and schema. Returns its environment."""
    env = {
        "HOMEDIAG_DATABASE_URL": f"sqlite:///{tmp_path / 'homediag.sqlite3'}",
        "HOMEDIAG_KEY_FILE": str(tmp_path / "keys.json"),
    }
    for args in (["keys", "init"], ["db", "upgrade"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "keys.json").exists()
    return env


def api_client(env: dict[str, str]) -> TestClient:
    """The API over a deployment made with ``make_deployment``, in process."""
    settings = Settings(
        database_url=env["HOMEDIAG_DATABASE_URL"], key_file=Path(env["HOMEDIAG_KEY_FILE"]), _env_file=None
    )  # type: ignore[call-arg]
    return TestClient(create_app(Runtime.from_settings(settings)))
