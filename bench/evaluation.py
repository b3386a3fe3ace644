"""``python -m bench evaluation``: the evaluation export and metrics at scale (issue 13: 1 M readings within a
minute or two, under 500 MB).

A fresh SQLite store is seeded directly (``bench.data.seed``: the real adapter and builder, rows as ingest
makes them, no HTTP) with ``--patients`` patients measuring twice a day for ``--days`` days, every one with a
research consent; then a child process runs, as the evaluator, the export (Parquet) and the metrics (DuckDB)
and the report, each timed; the child's peak resident memory is read from the kernel (``getrusage``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from homediag.consent import treatment_consent
from homediag.enrolment import enrol_patient, record_consent
from homediag.identity import CPR_SYSTEM
from homediag.keys import KeyRing, write_key_file
from homediag.runtime import Runtime
from homediag.settings import Settings
from homediag.store.database import upgrade
from homediag.synthetic import synthetic_patients
from homediag.users import create_user

from . import data
from .pilot import SETUP


def _runtime(database: str, key_file: Path) -> Runtime:
    return Runtime.from_settings(Settings(database_url=database, key_file=key_file, _env_file=None))  # type: ignore[call-arg]


def seed(directory: Path, patients: int, days: int) -> tuple[str, Path, str, int]:
    key_file = directory / "keys.json"
    write_key_file(key_file, KeyRing.generate())
    database = f"sqlite:///{directory / 'bench.sqlite3'}"
    upgrade(database)
    rt = _runtime(database, key_file)
    with rt.sessions.begin() as session:
        _, token = create_user(session, name="bench evaluator (synthetic)", role="evaluator", organisation="FIERS")
    start = (datetime.now(data.COPENHAGEN) - timedelta(days=days + 1)).date()
    people = synthetic_patients(patients)
    total = 0
    t0 = time.perf_counter()
    for n, person in enumerate(people):
        enrolled = enrol_patient(rt, SETUP, {
            "resourceType": "Patient",
            "identifier": [{"system": CPR_SYSTEM, "value": person.cpr}],
            "name": [{"family": person.family, "given": [person.given]}],
        })  # fmt: skip
        ref = f"Patient/{enrolled.patient.id}"
        record_consent(rt, SETUP, treatment_consent(ref, purposes=("HRESCH",), scope="research", start=start))
        total += data.seed(rt, data.cuff_envelopes([person], days, seed=n))
        if n % 100 == 99:
            print(f"  seeded {n + 1} patients, {total} Observations, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    rt.close()
    return database, key_file, token, total


def measure(database: str, key_file: Path, token: str, out: Path) -> dict[str, float]:
    """In the child process: export, metrics, report, each timed."""
    from homediag.access import AccessService
    from homediag.evaluation.export import export
    from homediag.evaluation.metrics import compute
    from homediag.evaluation.report import Parameters, render
    from homediag.users import authenticate

    rt = _runtime(database, key_file)
    with rt.sessions() as session:
        principal = authenticate(session, token)
    assert principal is not None
    t0 = time.perf_counter()
    result = export(AccessService(rt), principal, out / "export")
    t1 = time.perf_counter()
    today = date.today()
    compute(out / "export", today - timedelta(days=400), today)
    t2 = time.perf_counter()
    render(out / "export", out / "report", Parameters(None, today - timedelta(days=400), today))
    t3 = time.perf_counter()
    rows = sum(f["rows"] or 0 for n, f in result.manifest["files"].items() if n.startswith("readings/"))
    return {"export_s": t1 - t0, "metrics_s": t2 - t1, "report_s": t3 - t2, "reading_rows": rows,
            "parquet_bytes": sum(f["bytes"] for f in result.manifest["files"].values())}  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench evaluation", description=__doc__)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--days", type=int, default=246, help="1000 patients x 246 days: about 1 M Observations")
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--measure", nargs=4, metavar=("DATABASE", "KEY_FILE", "TOKEN", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        database, key_file, token, directory = args.measure
        print(json.dumps(measure(database, Path(key_file), token, Path(directory))))
        return 0
    with tempfile.TemporaryDirectory(prefix="homediag-bench-evaluation-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        database, key_file, token, observations = seed(work, args.patients, args.days)
        seeded = time.perf_counter() - t0
        print(f"seeded {observations} Observations of {args.patients} patients in {seeded:.0f} s", file=sys.stderr)
        child = subprocess.run(
            [sys.executable, "-m", "bench", "evaluation", "--measure", database, str(key_file), token, str(work)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        timings = json.loads(child.stdout.strip().splitlines()[-1])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "patients": args.patients,
        "days": args.days,
        "observations": observations,
        **{k: round(v, 1) if isinstance(v, float) else v for k, v in timings.items()},
        "export_and_metrics_s": round(timings["export_s"] + timings["metrics_s"], 1),
        "peak_rss_mb": round(peak_mb),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0
