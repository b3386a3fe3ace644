"""``homediag evaluation report``: the pilot's report (HTML, PDF when WeasyPrint is installed), its plots
(SVG), the metrics as FHIR MeasureReport resources, all from one evaluation export.

Deterministic: the same export (its snapshot hash) and the same parameters give byte-identical files.
The plots are rendered by matplotlib with a fixed font, no date in their metadata and a fixed
``svg.hashsalt``; the HTML names no time of its making, only the stamp (data snapshot, code version,
parameters).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

from . import measure  # noqa: E402
from .export import MANIFEST, software  # noqa: E402
from .metrics import BP, DAYS, Metrics, compute  # noqa: E402
from .suppression import ALL, Result  # noqa: E402

MAST = [
    ("Health problem and characteristics of the application", "partly",
     "who is monitored and for how long: enrolment, research consents, withdrawals, retention"),
    ("Safety", "partly",
     "technical safety of the data flow: refused and held uploads by reason, device clock faults, delays; "
     "clinical safety: alerts (readings triaged red or yellow) and how many were acknowledged, and how late; "
     "not whether an alert led to the right action"),
    ("Clinical effectiveness", "partly",
     "share of patient-weeks with a home blood-pressure average under 135/85 over time; outcomes "
     "(admissions, medication changes) are not in the platform"),
    ("Patient perspectives", "partly", "adherence (days with a reading per patient-week) is a behavioural proxy only; "
     "satisfaction, quality of life and experience need questionnaires or interviews"),
    ("Economic aspects", "no", "no cost, time-use or resource data is recorded by the platform"),
    ("Organisational aspects", "partly", "alerts per patient-week and time to acknowledge them (the clinicians' "
     "workload and response); staff time and workflows are not recorded"),
    ("Socio-cultural, ethical and legal aspects", "no",
     "beyond consent counts, nothing; the platform holds no data on these"),
]  # fmt: skip


@dataclass(frozen=True)
class Parameters:
    pilot: str | None
    start: date
    end: date

    def as_dict(self) -> dict[str, Any]:
        return {"pilot": self.pilot, "from": self.start.isoformat(), "to": self.end.isoformat()}


# the plots' style, over matplotlib's defaults, only while they are drawn: the process's own settings (the web
# app's charts draw in the same process when ``HOMEDIAG_CHART_PROCESSES=0``) are left as they were
_STYLE = {
    "svg.hashsalt": "homediag-evaluation",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "figure.figsize": (6.4, 3.2),
    "figure.dpi": 100,
}


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None, "Creator": "homediag evaluation report"})
    plt.close(fig)


def _plots(m: Metrics, directory: Path) -> list[dict[str, str]]:
    with plt.style.context("default"), plt.rc_context(_STYLE):
        return _drawn_plots(m, directory)


def _drawn_plots(m: Metrics, directory: Path) -> list[dict[str, str]]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []

    res = m.retention
    weeks = [k[0] for k in res.cube.published if k[0] != ALL]
    fig, ax = plt.subplots()
    shown = [(w, res.number((w,))) for w in weeks]
    ax.bar([str(w) for w, n in shown], [n or 0 for _, n in shown], color="#3b6ea5")
    for i, (_w, n) in enumerate(shown):
        if n is None:
            ax.text(i, 0, res.cell((weeks[i],)), ha="center", va="bottom")
    ax.set_xlabel("study week (1 = week of the first reading)")
    ax.set_ylabel("patients still measuring")
    ax.set_title("Retention")
    _save(fig, directory / "retention.svg")
    out.append({"file": "plots/retention.svg", "title": "Retention: patients still measuring, by study week"})

    res = m.adherence
    weeks = sorted({k[0] for k in res.cube.published if k[0] != ALL})
    mean = []
    for w in weeks:
        cells = [res.number((w, d, ALL)) for d in DAYS]
        total = res.number((w, ALL, ALL))
        mean.append(
            sum(d * (n or 0) for d, n in zip(DAYS, cells, strict=True)) / total if total and None not in cells else None
        )
    share = []
    for w in weeks:
        under, over = res.number((w, ALL, "under")), res.number((w, ALL, "over"))
        share.append(100 * under / (under + over) if under is not None and over is not None and under + over else None)
    for name, series, label, title in (
        ("adherence.svg", mean, "% of patient-weeks with readings on 4+ days", "Adherence"),
        ("bp-under-135-85.svg", share, "% of measured patient-weeks under 135/85", "Home blood pressure under 135/85"),
    ):
        fig, ax = plt.subplots()
        xs = [str(w) for w in weeks]
        ax.plot(xs, [v if v is not None else float("nan") for v in series], marker="o", color="#3b6ea5")
        for i, v in enumerate(series):
            if v is None:
                ax.annotate("suppressed", (i, 0), ha="center", fontsize=7)
        ax.set_xlabel("ISO week (Monday)")
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.tick_params(axis="x", labelrotation=30)
        _save(fig, directory / name)
        out.append({"file": f"plots/{name}", "title": title})

    fig, ax = plt.subplots()
    xs = [str(d["week"]) for d in m.delays]
    for key, label in (
        ("median_device_to_gateway_s", "device → gateway"),
        ("median_gateway_to_platform_s", "gateway → platform"),
    ):
        ax.plot(xs, [d[key] / 60 if d[key] is not None else float("nan") for d in m.delays], marker="o", label=label)
    ax.set_yscale("symlog")
    ax.set_ylabel("median delay (minutes)")
    ax.set_xlabel("ISO week (Monday)")
    ax.set_title("Transmission delay")
    ax.legend()
    ax.tick_params(axis="x", labelrotation=30)
    _save(fig, directory / "delays.svg")
    out.append({"file": "plots/delays.svg", "title": "Transmission delay (median per week)"})
    return out


def _table(
    res: Result, rows: int, cols: int | None, row_values: Any, col_values: Any, fixed: dict[int, Any]
) -> dict[str, Any]:
    """A published 2-D (or 1-D) slice of a cube as header and rows of display strings."""
    n = len(res.cube.dims)

    def key(r: Any, c: Any) -> tuple[Any, ...]:
        k: list[Any] = [fixed.get(i, ALL) for i in range(n)]
        k[rows] = r
        if cols is not None:
            k[cols] = c
        return tuple(k)

    header = [res.cube.dims[rows]] + ([str(c) for c in col_values] + ["total"] if cols is not None else ["count"])
    body = []
    for r in [*row_values, ALL]:
        label = "total" if r == ALL else str(r)
        if cols is None:
            body.append([label, res.cell(key(r, None))])
        else:
            body.append(
                [label]
                + [
                    res.cell(key(r, c)) if key(r, c) in res.hidden or key(r, c) in res.shown else ""
                    for c in [*col_values, ALL]
                ]
            )
    return {"header": header, "rows": body}


def _coverage(m: Metrics) -> dict[str, str]:
    """``Metrics.coverage`` as the report shows it, every count under 5 as "<5"; with the readings dated in the period
    as the readings table shows its total (which complementary suppression may hide as "x"; none: "<5")."""
    shown = {k: str(n) if n >= 5 else "<5" for k, n in m.coverage.items()}
    total = tuple(ALL for _ in m.readings.cube.dims)
    known = total in m.readings.hidden or total in m.readings.shown
    shown["in_period"] = m.readings.cell(total) if known else "<5"
    return shown


def render(export_dir: Path, out: Path, params: Parameters) -> dict[str, Any]:
    """Write report.html (and report.pdf when WeasyPrint is installed), plots/*.svg and measure-reports.json."""
    manifest = json.loads((export_dir / MANIFEST).read_text())
    m = compute(export_dir, params.start, params.end)
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(m, out / "plots")
    a = m.adherence
    weeks = sorted({k[0] for k in a.cube.published if k[0] != ALL})
    up = m.uploads
    tables = {
        "events": _table(m.events, 0, 1, m.events.cube.values[0], m.events.cube.values[1], {}),
        "retention": _table(m.retention, 0, None, m.retention.cube.values[0], None, {}),
        "adherence": _table(a, 0, 1, weeks, DAYS, {}),
        "clinical": _table(a, 0, 2, weeks, BP[:2], {}),
        "readings": _table(m.readings, 0, None, m.readings.cube.values[0], None, {}),
        "uploads_vendor": _table(up, 0, 1, up.cube.values[0], up.cube.values[1], {}),
        "uploads_adapter": _table(up, 0, 2, up.cube.values[0], up.cube.values[2], {}),
        "clock": _table(m.clock, 0, 1, m.clock.cube.values[0], m.clock.cube.values[1], {}),
        "alerts": _table(m.alerts, 0, 1, m.alerts.cube.values[0], m.alerts.cube.values[1], {}),
        "acknowledged": _table(m.acknowledged, 0, 1, m.acknowledged.cube.values[0], m.acknowledged.cube.values[1], {}),
    }
    suppressed = [s for r in m.results for s in r.log]
    code = {**manifest["software"], "report": software()["homediag"], "evaluation_code_sha256": code_fingerprint()}
    stamp = {
        "snapshot": manifest["snapshot"],
        "software": code,
        "parameters": params.as_dict(),
    }
    stamp["id"] = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()
    reports = measure.measure_reports(m, params, stamp)
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("homediag.evaluation", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
    )
    html = env.get_template("report.html.j2").render(
        params=params,
        manifest=manifest,
        mast=MAST,
        plots=plots,
        tables=tables,
        delays=m.delays,
        alert_rates=m.alert_rates,
        to_acknowledge=m.to_acknowledge,
        suppressed=suppressed,
        stamp=stamp,
        stamp_json=json.dumps(stamp, indent=2, sort_keys=True),
        patients=manifest["patients"],
        coverage=_coverage(m),
        cut=m.coverage.get("patients_cut", 0) > 0,
    )
    _atomic(out / "report.html", html.encode())
    _atomic(out / "measure-reports.json", (json.dumps(reports, indent=2, sort_keys=True) + "\n").encode())
    pdf = _pdf(out)
    return {"html": out / "report.html", "pdf": pdf, "plots": plots, "stamp": stamp, "suppressed": len(suppressed)}


def code_fingerprint() -> str:
    """SHA-256 over the evaluation package's own source and templates: the code version, without git."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("*.py"), *root.glob("templates/*.j2")]):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pdf(out: Path) -> Path | None:
    """The HTML as PDF with WeasyPrint, when it is installed (``pip install homediag[pdf]``)."""
    try:
        import weasyprint  # type: ignore[import-not-found]
    except (ImportError, OSError):
        return None
    target = out / "report.pdf"
    weasyprint.HTML(filename=str(out / "report.html"), base_url=str(out)).write_pdf(str(target) + ".tmp")
    os.replace(str(target) + ".tmp", target)
    return target


def clear(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
