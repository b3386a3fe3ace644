"""``python -m bench.web``: the web app's worklist and patient page, server time of the whole page.

500 patients with 14 days of twice-daily cuff readings (seeded directly, as ``python -m bench`` seeds), one of
them with 90 days, a clinician with all of them in its team, signed in with a one-time link. Times
``GET /app/worklist`` (access read, monitoring's triage, identity from the vault, template) and
``GET /app/patients/{id}?days=90`` (readings, triage, two server-side SVG charts, table, calendar, uploads)
through the ASGI app in process (no network). Cuff readings only: blood pressure and pulse, not six
measurement types.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from homediag.api.app import create_app
from homediag.synthetic import synthetic_patients
from homediag.web.sessions import issue_signin_link

from . import data, env
from .pilot import enrol
from .stats import Latency


def run(engine: str, patients: int, days: int, repeats: int) -> dict[str, object]:
    people = synthetic_patients(patients)
    with env.fresh_database(engine) as url, env.runtime(url) as rt, TestClient(create_app(rt)) as client:
        rt.settings.web_secure_cookies = False
        consent_from = (datetime.now(data.COPENHAGEN) - timedelta(days=91)).date()
        pilot = enrol(client, rt, people, consent_from)
        seeded = data.seed(rt, data.cuff_envelopes(people[1:], days) + data.cuff_envelopes(people[:1], 90))
        from sqlalchemy import select

        from homediag.store import models as m

        with rt.sessions() as session:
            clinician_id = session.execute(select(m.User.id).where(m.User.role == "clinician")).scalar_one()
        client.get(issue_signin_link(rt, clinician_id), follow_redirects=False)
        page = f"/app/patients/{pilot.patient_ids[0]}?days=90"
        assert client.get("/app/worklist").status_code == 200  # warm-up
        assert client.get(page).status_code == 200
        worklist, patient = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            client.get("/app/worklist")
            worklist.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.get(page)
            patient.append(time.perf_counter() - t0)
        return {
            "engine": engine,
            "patients": patients,
            "observations": seeded,
            "worklist_page": Latency.of(worklist).as_json(),
            "patient_page_90_days": Latency.of(patient).as_json(),
        }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    for engine in ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]:
        print(json.dumps(run(engine, args.patients, args.days, args.repeats)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
