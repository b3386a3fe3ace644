"""The report: byte-identical for the same export and parameters, MAST domains, methods, what was suppressed,
no identity; the metrics as FHIR MeasureReports."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from evaluation_support import all_bytes, evaluator_fixture, exported_fixture, research_pilot_fixture  # noqa: F401
from fhir.resources.R4B.measurereport import MeasureReport

from homediag.evaluation.export import ExportResult
from homediag.evaluation.report import Parameters, render
from homediag.synthetic import synthetic_patients


@pytest.fixture(scope="module")
def params() -> Parameters:
    today = date.today()
    return Parameters("nykobing-f-home-diagnostics", today - timedelta(days=60), today)


@pytest.fixture(scope="module")
def report(exported: ExportResult, params: Parameters, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    render(exported.directory, out, params)
    return out


def test_the_same_export_and_parameters_give_a_byte_identical_report(
    exported: ExportResult, params: Parameters, report: Path, tmp_path: Path
) -> None:
    render(exported.directory, tmp_path, params)
    first = {p.relative_to(report): p.read_bytes() for p in report.rglob("*") if p.is_file()}
    second = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert {Path("report.html"), Path("measure-reports.json"), Path("plots/retention.svg")} <= first.keys()
    assert first == second
    other = tmp_path / "other"
    render(exported.directory, other, Parameters(params.pilot, params.start + timedelta(days=1), params.end))
    assert (other / "report.html").read_bytes() != first[Path("report.html")]  # the stamp names the parameters


def test_the_report_maps_mast_domains_explains_methods_and_lists_suppressions(
    exported: ExportResult, report: Path
) -> None:
    html = (report / "report.html").read_text()
    for domain in ("Clinical effectiveness", "Economic aspects", "Organisational aspects", "Patient perspectives"):
        assert domain in html
    assert "Methods" in html and "135/85" in html and "Small-cell suppression" in html
    assert "What was suppressed and why" in html and "a count under 5" in html
    assert exported.manifest["snapshot"] in html
    assert "&lt;5" in html
    assert "Alerts per patient-week" in html and "Time to acknowledge alerts" in html
    assert '<img src="plots/adherence.svg"' in html
    svg = (report / "plots" / "adherence.svg").read_text()
    assert "<svg" in svg and "Date" not in svg


def test_no_identity_in_the_report(report: Path) -> None:
    data = all_bytes(report)
    for person in synthetic_patients(16, 7):
        for secret in (person.cpr, person.family, person.cuff_serial):
            assert secret.encode() not in data


def test_metrics_as_measure_reports_validate_and_mask_small_counts(report: Path) -> None:
    bundle = json.loads((report / "measure-reports.json").read_text())
    reports = [MeasureReport.model_validate(e["resource"]) for e in bundle["entry"]]
    assert {r.measure.rsplit("-", 1)[-1] for r in reports} >= {"weeks", "retention", "uploads", "faults", "alerts",
                                                               "acknowledge"}  # fmt: skip
    populations = [
        pop for r in reports for g in r.group for s in g.stratifier for st in s.stratum for pop in st.population
    ]
    masked = [p for p in populations if p.count is None]
    assert masked and all(p.extension[0].valueCode == "masked" for p in masked)
    assert all(p.count >= 5 for p in populations if p.count is not None)


def test_the_report_says_how_the_period_meets_the_exported_shifted_dates(
    exported: ExportResult, params: Parameters, tmp_path: Path
) -> None:
    """The evaluator's dates are each patient's shifted by its own offset (up to 60 days either way): a period cuts
    each patient at other real days. The report says how many of the export's readings its period holds."""
    import pyarrow.parquet as pq

    rows = pq.read_table(sorted((exported.directory / "readings").glob("*.parquet"))).to_pylist()
    days_of: dict[str, set[date]] = {}
    for r in rows:
        days_of.setdefault(r["patient"], set()).add(r["local_date"])
    # the offsets are drawn from this run's keys: a period from the middle of one patient's days to the last day
    # of all cuts that patient, whatever the offsets
    days = sorted(max(days_of.values(), key=len))
    start, end = days[len(days) // 2], max(r["local_date"] for r in rows)
    inside = {r["reading"] for r in rows if start <= r["local_date"] <= end}
    cut = sum(1 for dates in days_of.values() if min(dates) < start <= max(dates))
    total = len({r["reading"] for r in rows})
    assert len(days) >= 2 and len(inside) < total and cut >= 1

    def shown(n: int) -> str:
        return str(n) if n >= 5 else "&lt;5"  # every count under 5 as "<5" (HTML-escaped)

    render(exported.directory, tmp_path, Parameters(params.pilot, start, end))
    html = " ".join((tmp_path / "report.html").read_text().split())
    reports = json.loads((tmp_path / "measure-reports.json").read_text())["entry"]
    readings = next(e["resource"] for e in reports if e["resource"]["measure"].endswith("-readings"))
    published = readings["group"][0]["population"][0].get("count")  # the readings table's total, unless suppressed
    if published is not None:
        assert published == len(inside)
        assert f"Of the export's {shown(total)} readings, {published} are dated in the period" in html
    else:  # as the readings table shows it: never a number that table hides
        said = html[html.index(f"Of the export's {shown(total)} readings, ") :][:120]
        assert f" {len(inside)} are dated" not in said
    assert f"{shown(cut)} patients have readings on both sides of its edges" in html
    assert "up to 60 days either way" in html
