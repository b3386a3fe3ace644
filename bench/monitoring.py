"""``python -m bench.monitoring``: the monitoring worklist and a patient's status, server time.

500 patients with 14 days of twice-daily cuff readings (seeded directly, as ``python -m bench`` seeds), half of
them on the hypertension plan (so adherence and blue are computed), a clinician with all of them in its team.
Times ``AccessService.worklist`` (the decided, audited read the web page and ``GET /monitoring/worklist`` call)
over the last 7 days, and ``patient_status`` of one patient, in process: the server's own time, without HTTP.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from homediag.access import AccessService
from homediag.api.app import create_app
from homediag.synthetic import synthetic_patients
from homediag.users import Principal

from . import data, env
from .pilot import enrol
from .stats import Latency


def run(engine: str, patients: int, days: int, repeats: int) -> dict[str, object]:
    people = synthetic_patients(patients)
    with env.fresh_database(engine) as url, env.runtime(url) as rt, TestClient(create_app(rt)) as client:
        consent_from = (datetime.now(data.COPENHAGEN) - timedelta(days=days + 1)).date()
        pilot = enrol(client, rt, people, consent_from)
        seeded = data.seed(rt, data.cuff_envelopes(people, days))
        access = AccessService(rt)
        with rt.sessions() as session:
            from sqlalchemy import select

            from homediag.store import models as m

            clinician_id = session.execute(select(m.User.id).where(m.User.role == "clinician")).scalar_one()
        clinician = Principal(clinician_id, "bench clinician", "clinician", None)
        for n, pid in enumerate(pilot.patient_ids):
            if n % 2 == 0:
                access.record_monitoring_settings(clinician, pid, {"group": "hypertension"}, 0)
        end = rt.clock()
        start = end - timedelta(days=7)
        access.worklist(clinician, start, end)  # warm-up
        worklist = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = access.worklist(clinician, start, end)
            worklist.append(time.perf_counter() - t0)
        status = []
        for n in range(repeats * 5):
            t0 = time.perf_counter()
            access.patient_status(clinician, pilot.patient_ids[n % len(pilot.patient_ids)], start, end)
            status.append(time.perf_counter() - t0)
        colours: dict[str, int] = {}
        for row in rows:
            colours[row.colour.value] = colours.get(row.colour.value, 0) + 1
        return {
            "engine": engine,
            "patients": patients,
            "observations": seeded,
            "worklist_7_days": Latency.of(worklist).as_json(),
            "patient_status_7_days": Latency.of(status).as_json(),
            "colours": colours,
        }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.monitoring", description=__doc__)
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    for engine in engines:
        print(json.dumps(run(engine, args.patients, args.days, args.repeats)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
