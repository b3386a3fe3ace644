"""Statements per request behind ``POST /ingest``: a single envelope and a list of 100, counted at the driver.

``python -m bench.roundtrips [sqlite|postgresql] [--profile]``: a fresh database, 10 enrolled patients, then
200 single envelopes and 7 lists of 100 through ``IngestService.post`` on this thread (no HTTP: the count is
the ingest's own, without the token lookup); prints envelopes/s and the statements each request sent (every
``cursor.execute``, each ``COPY`` and each driver executemany, not counting BEGIN and COMMIT) and the CPU each
took: this process's (the service's Python) and PostgreSQL's backends' (read from ``/proc``: the server runs on
this machine). ``--profile`` adds cProfile of the lists, ``--profile-single`` of the 200 single envelopes (own
time, then cumulative).
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, text

from homediag.api.app import create_app
from homediag.ingest import IngestService
from homediag.synthetic import synthetic_patients
from homediag.users import authenticate

from . import data, env
from .client import TestClient
from .pilot import enrol
from .served import _cpu_seconds


def _count_copies(statements: list[int]) -> None:
    """A ``COPY`` (``store.repositories.copy``) and SQLite's executemany of the driver (``many.insert_rows``) go to
    the driver directly, unseen by the cursor event: count each as one."""
    from homediag.store.repositories import copy, many, observations, uploads

    def counted(*args: Any, **kwargs: Any) -> None:
        statements[0] += 1
        copy.copy_rows(*args, **kwargs)

    observations.copy_rows = uploads.copy_rows = counted  # type: ignore[attr-defined]
    insert_rows = many.insert_rows

    def counted_many(*args: Any, **kwargs: Any) -> None:
        statements[0] += 1
        insert_rows(*args, **kwargs)

    many.insert_rows = counted_many  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    engine = argv[0] if argv and not argv[0].startswith("-") else "sqlite"
    people = synthetic_patients(10)
    envelopes = data.cuff_envelopes(people, 60)
    with env.fresh_database(engine) as url, env.runtime(url) as rt:
        with TestClient(create_app(rt)) as client:
            pilot = enrol(client, rt, people, (datetime.now(data.COPENHAGEN) - timedelta(days=61)).date())
        with rt.sessions() as session:
            gateway = authenticate(session, pilot.tokens["gateway"])
        service = IngestService(rt)
        statements = [0]
        event.listen(rt.engine, "before_cursor_execute", lambda *_a, **_k: statements.__setitem__(0, statements[0] + 1))
        _count_copies(statements)
        backends: set[int] = set()
        if engine == "postgresql":  # every pooled connection's backend, so that its CPU can be read
            event.listen(
                rt.engine,
                "connect",
                lambda dbapi, _r: backends.add(int(dbapi.execute("select pg_backend_pid()").fetchone()[0])),
            )
            with rt.engine.connect() as conn:
                backends.add(int(conn.execute(text("select pg_backend_pid()")).scalar_one()))
        singles = [json.dumps(e).encode() for e in envelopes[:220]]
        for body in singles[:20]:  # warm-up
            service.post(gateway, body)
        statements[0] = 0
        single_profile = cProfile.Profile() if "--profile-single" in argv else None
        t0, cpu0, pg0 = time.perf_counter(), time.process_time(), _cpu_seconds(backends)
        if single_profile:
            single_profile.enable()
        for body in singles[20:]:
            answer = service.post(gateway, body)
            if answer.status != 201:
                raise RuntimeError(f"a single envelope answered {answer.status}: {answer.body}")
        if single_profile:
            single_profile.disable()
        seconds = time.perf_counter() - t0
        cpu, pg = time.process_time() - cpu0, _cpu_seconds(backends) - pg0
        print(
            f"{engine}: single envelopes {200 / seconds:.0f}/s, {statements[0] / 200:.1f} statements each;"
            f" CPU per request {cpu / 200 * 1000:.2f} ms here, {pg / 200 * 1000:.2f} ms in PostgreSQL's backends"
        )
        if single_profile:  # where one request's time goes (per request: divide by 200)
            pstats.Stats(single_profile).sort_stats("tottime").print_stats(30)
            pstats.Stats(single_profile).sort_stats("cumulative").print_stats(40)
        lists = [json.dumps(envelopes[i : i + 100]).encode() for i in range(300, 1100, 100)]
        service.post(gateway, lists[0])  # warm-up
        statements[0] = 0
        profile = cProfile.Profile() if "--profile" in argv else None
        created = 0
        t0 = time.perf_counter()
        if profile:
            profile.enable()
        for body in lists[1:]:
            results = service.post(gateway, body).body["results"]
            created += sum(sum(o["outcome"] == "created" for o in r["observations"]) for r in results)
        if profile:
            profile.disable()
        seconds = time.perf_counter() - t0
        print(f"{engine}: lists of 100 {created / seconds:.0f} Observations/s, {statements[0] / 7:.0f} statements each")
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
