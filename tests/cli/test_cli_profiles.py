"""``homediag profiles validate`` (``homediag/cli/profiles.py``): the PHD IG's examples pass; an error names the
file and the path in it."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import runner

from homediag.cli import app

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
