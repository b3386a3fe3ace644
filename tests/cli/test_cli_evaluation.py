"""``homediag evaluation export|report`` (``homediag/cli/evaluation.py``), as the evaluator whose token is given."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from cli_support import runner

from homediag.cli import app
from homediag.evaluation.pilot import ResearchPilot, build_research_pilot


@pytest.fixture(scope="module")
def research(tmp_path_factory: pytest.TempPathFactory) -> tuple[ResearchPilot, dict[str, str]]:
    built = build_research_pilot(tmp_path_factory.mktemp("cli") / "demo", patients=8, days=8, seed=3)
    env = {"HOMEDIAG_DATABASE_URL": built.demo.database, "HOMEDIAG_KEY_FILE": str(built.demo.key_file)}
    return built, env


def test_export_writes_tables_codebook_and_manifest(research, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    built, env = research
    out = tmp_path / "csv"
    result = runner.invoke(
        app,
        ["evaluation", "export", "--format", "csv", "--out", str(out)],
        env={**env, "HOMEDIAG_TOKEN": built.evaluator_token},
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "csv" and "readings/part-00000.csv" in manifest["files"]
    assert (out / "codebook.md").read_text().startswith("# Codebook")
    assert manifest["snapshot"] in result.output
    again = runner.invoke(app, ["evaluation", "export", "--out", str(out), "--token", built.evaluator_token], env=env)
    assert again.exit_code == 1 and "exists already" in again.output


def test_report_writes_html_plots_and_measure_reports(research, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    built, env = research
    today = date.today()
    args = [
        "evaluation",
        "report",
        "--from",
        str(today - timedelta(days=30)),
        "--to",
        str(today),
        "--out",
        str(tmp_path),
    ]
    result = runner.invoke(app, [*args, "--token", built.evaluator_token], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.html").exists() and (tmp_path / "plots" / "retention.svg").exists()
    assert (tmp_path / "export" / "manifest.json").exists() and not (tmp_path / "export.new").exists()
    assert json.loads((tmp_path / "measure-reports.json").read_text())["resourceType"] == "Bundle"
    assert "counts suppressed" in result.output


def test_without_an_evaluator_token_nothing_is_exported(research, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    built, env = research
    out = tmp_path / "x"
    missing = runner.invoke(app, ["evaluation", "export", "--out", str(out)], env=env)
    assert missing.exit_code == 1 and "token is needed" in missing.output
    wrong = runner.invoke(
        app, ["evaluation", "export", "--out", str(out), "--token", built.demo.tokens["clinician"]], env=env
    )
    assert wrong.exit_code == 1 and "may not receive evaluation data" in wrong.output
    assert not out.exists()
    bad = runner.invoke(
        app, ["evaluation", "report", "--from", "2026-02-30", "--to", "2026-03-01", "--out", str(out)], env=env
    )
    assert bad.exit_code == 1 and "--from must be a date" in bad.output
