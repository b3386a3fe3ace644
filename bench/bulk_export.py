"""``python -m bench.bulk_export``: one Bulk Data export job, end to end, on SQLite and/or PostgreSQL.

Patients are enrolled with a research consent (HRESCH) through the API, readings are seeded directly
(``bench.data.seed``, the ingest's own row builder), an evaluator kicks off ``GET /fhir/$export``
through the app, and the job is run in process (``homediag.bulk.worker.run_job``) while the wall time
and the peak of memory allocated by Python (tracemalloc) are measured. Then every file is counted.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path
from typing import Any

from homediag.api.app import create_app
from homediag.bulk.worker import run_job
from homediag.consent import treatment_consent
from homediag.synthetic import synthetic_patients
from homediag.users import create_user

from . import data, env
from .client import TestClient
from .pilot import enrol


def run(engine: str, patients: int, days: int, trace_memory: bool = False) -> dict[str, Any]:
    with env.fresh_database(engine) as url, env.runtime(url) as rt, tempfile.TemporaryDirectory() as out:
        rt.settings = rt.settings.model_copy(update={"export_dir": Path(out), "export_worker": False})
        people = synthetic_patients(patients, seed=2026)
        with TestClient(create_app(rt)) as client:
            pilot = enrol(client, rt, people, date(2020, 1, 1))
            admin = pilot.auth("admin")
            for pid in pilot.patient_ids:
                consent = treatment_consent(f"Patient/{pid}", purposes=("HRESCH",), scope="research")
                client.post("/fhir/Consent", headers=admin, json=consent).raise_for_status()
            seeded = data.seed(rt, data.cuff_envelopes(people, days))
            with rt.sessions.begin() as session:
                _, token = create_user(
                    session, name="bench evaluator (synthetic)", role="evaluator", organisation="FIERS"
                )
            kicked = client.get(
                "/fhir/$export", headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"}
            )
            kicked.raise_for_status()
            job_id = kicked.headers["Content-Location"].rsplit("/", 1)[1]
            if trace_memory:  # tracemalloc slows Python down: time and memory come from separate runs
                tracemalloc.start()
            started = time.perf_counter()
            status = run_job(rt, job_id)
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1] if trace_memory else None
            tracemalloc.stop()
            files = sorted(Path(out, job_id).iterdir())
            lines = sum(sum(1 for _ in f.open()) for f in files)
            size = sum(f.stat().st_size for f in files)
        return {
            "engine": engine,
            "status": status,
            "patients": patients,
            "observations_seeded": seeded,
            "resources_exported": lines,
            "files": len(files),
            "bytes": size,
            "seconds": round(seconds, 1),
            "resources_per_second": round(lines / seconds),
            "peak_python_allocations_mb": round(peak / 2**20, 1) if peak is not None else None,
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk_export", description=__doc__)
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--days", type=int, default=500, help="two cuff readings a day per patient")
    parser.add_argument("--trace-memory", action="store_true", help="measure the job's peak Python allocations")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    engines = ("sqlite", "postgresql") if args.engine == "both" else (args.engine,)
    for engine in engines:
        print(json.dumps(run(engine, args.patients, args.days, args.trace_memory)), flush=True)


if __name__ == "__main__":
    main()
