"""``python -m bench evaluation``: the evaluation export and metrics at scale (issue 13: 1 M readings within a
minute or two, under 500 MB).

A fresh SQLite store is seeded directly (``bench.data.seed``: the real adapter and builder, rows as ingest
makes them, no HTTP) with ``--patients`` patients measuring twice a day for ``--days`` days, every one with a
research consent; then a child process runs, as the evaluator, the export (Parquet) and the metrics (DuckDB)
and the report, each timed; the child's peak resident memory is read from the kernel (``getrusage``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text

from homediag.consent import treatment_consent
from homediag.enrolment import enrol_patient, record_consent
from homediag.identity import CPR_SYSTEM
from homediag.keys import KeyRing, write_key_file
from homediag.runtime import Runtime
from homediag.settings import Settings
from homediag.store import models as m
from homediag.store.database import upgrade
from homediag.synthetic import synthetic_patients
from homediag.users import create_user

from . import data
from .pilot import SETUP


def _runtime(database: str, key_file: Path) -> Runtime:
    return Runtime.from_settings(Settings(database_url=database, key_file=key_file, _env_file=None))  # type: ignore[call-arg]


TEMPLATE = 20  # patients whose readings are made by the real adapter and builder; the rest are copies in SQL


def seed(directory: Path, patients: int, days: int, database: str | None = None) -> tuple[str, Path, str, int]:
    """A store with ``patients`` enrolled (the real enrolment and consent code, each with a research consent),
    measuring twice a day for ``days`` days. The first ``TEMPLATE`` patients' readings are made by the real
    adapter and builder (``bench.data.seed``); every further patient gets a copy of one template patient's
    readings, made by one INSERT ... SELECT per patient (new ids, its own key, subject and dedup claims): seeding
    1 M readings through Python would take longer than the run it is for."""
    key_file = directory / "keys.json"
    write_key_file(key_file, KeyRing.generate())
    database = database or f"sqlite:///{directory / 'bench.sqlite3'}"
    upgrade(database)
    rt = _runtime(database, key_file)
    with rt.sessions.begin() as session:
        _, token = create_user(session, name="bench evaluator (synthetic)", role="evaluator", organisation="FIERS")
    start = (datetime.now(data.COPENHAGEN) - timedelta(days=days + 1)).date()
    people = synthetic_patients(patients)
    template: list[tuple[str, str]] = []  # (patient key, patient id)
    total = 0
    t0 = time.perf_counter()
    for n, person in enumerate(people):
        enrolled = enrol_patient(rt, SETUP, {
            "resourceType": "Patient",
            "identifier": [{"system": CPR_SYSTEM, "value": person.cpr}],
            "name": [{"family": person.family, "given": [person.given]}],
        })  # fmt: skip
        pid = enrolled.patient.id
        record_consent(
            rt, SETUP, treatment_consent(f"Patient/{pid}", purposes=("HRESCH",), scope="research", start=start)
        )
        if n < TEMPLATE:
            total += data.seed(rt, data.cuff_envelopes([person], days, seed=n))
            with rt.sessions() as session:
                pkey = session.execute(select(m.Patient.patient_key).where(m.Patient.id == pid)).scalar_one()
            template.append((pkey, pid))
        else:
            total += _copy(rt, template[n % len(template)], pid, n)
        if n % 100 == 99:
            print(f"  seeded {n + 1} patients, {total} Observations, {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    rt.close()
    return database, key_file, token, total


def _copy(rt: Runtime, source: tuple[str, str], pid: str, n: int) -> int:
    """Copy the readings of ``source`` (a template patient's key and id) to patient ``pid`` (the n-th)."""
    with rt.sessions() as session:
        pkey = session.execute(select(m.Patient.patient_key).where(m.Patient.id == pid)).scalar_one()
    postgres = rt.engine.dialect.name == "postgresql"
    prefix = "lpad(to_hex(CAST(:n AS integer)), 6, '0')" if postgres else "printf('%06x', :n)"
    new_id = f"{prefix} || substr(id, 7)"
    resource = f"replace(replace(resource{'::text' if postgres else ''}, id, {new_id}), :old_ref, :new_ref)"
    columns = [c.name for c in m.Observation.__table__.columns if c.name != "txn"]
    served = f"replace(replace(served_json, id, {new_id}), :old_ref, :new_ref)"  # same lengths: the marks still fit
    chosen = {
        "id": new_id,
        "patient_key": ":pkey",
        "resource": resource + ("::jsonb" if postgres else ""),
        "served_json": served,
    }
    params = {"n": n, "pkey": pkey, "source": source[0], "old_ref": f"Patient/{source[1]}", "new_ref": f"Patient/{pid}"}
    with rt.engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO observation_dedup (patient_key, dedup, observation_id, effective_start) "
                f"SELECT :pkey, dedup, {new_id}, effective_start FROM observation WHERE patient_key = :source"
            ),
            params,
        )
        made = conn.execute(
            text(
                f"INSERT INTO observation ({', '.join(columns)}) "
                f"SELECT {', '.join(chosen.get(c, c) for c in columns)} FROM observation WHERE patient_key = :source"
            ),
            params,
        )
    return int(made.rowcount)


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
    gc.freeze()  # as the command does (cli/evaluation.py)
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
    parser.add_argument(
        "--postgres",
        metavar="SERVER",
        help="seed a scratch PostgreSQL database on SERVER (e.g. postgresql+psycopg://postgres@127.0.0.1:5432) "
        "instead of SQLite; it is dropped at the end",
    )
    parser.add_argument("--measure", nargs=4, metavar=("DATABASE", "KEY_FILE", "TOKEN", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        database, key_file, token, directory = args.measure
        print(json.dumps(measure(database, Path(key_file), token, Path(directory))))
        return 0
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="homediag-bench-evaluation-")))
        url = None
        if args.postgres:
            from homediag.store.scratch import scratch_postgres_database

            url = stack.enter_context(scratch_postgres_database(args.postgres, "homediag_bench_evaluation"))
        t0 = time.perf_counter()
        database, key_file, token, observations = seed(work, args.patients, args.days, url)
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
        "engine": "postgresql" if args.postgres else "sqlite",
        "load_average": [round(x, 2) for x in os.getloadavg()],
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
