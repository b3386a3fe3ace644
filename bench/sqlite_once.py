"""A list of 100 on SQLite with each Observation's served text stored once (as its resource) or twice (beside it).

``python -m bench.sqlite_once [--lists N]``: a fresh SQLite file, 10 enrolled patients, 3 lists of 100 cuff envelopes
to warm up, then N lists each way through ``IngestService.post`` (no HTTP), the two ways alternated list by list in
this one process (``served.stored_once`` answering True or False), the heap frozen as the server freezes it. Prints
this thread's CPU and the wall time per list (min / median / mean), and the bytes the store grew by each way. Both
ways alternate within a second, so a machine's load drifts the two alike: the figure to compare on a busy machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta

from sqlalchemy import text

from homediag import served
from homediag.api.app import create_app
from homediag.ingest import IngestService
from homediag.synthetic import synthetic_patients
from homediag.users import authenticate

from . import data, env
from .client import TestClient
from .pilot import enrol


def _size(url: str) -> int:
    """The SQLite file and its WAL, in bytes."""
    path = url.removeprefix("sqlite:///")
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def _ms(seconds: list[float]) -> str:
    return " / ".join(f"{f(seconds) * 1000:6.1f}" for f in (min, statistics.median, statistics.fmean))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_once", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lists", type=int, default=30, help="lists of 100 each way (default 30)")
    lists = parser.parse_args(argv).lists
    people = synthetic_patients(10)
    envelopes = data.cuff_envelopes(people, 2 * lists * 10 + 40)
    bodies = [json.dumps(envelopes[i : i + 100]).encode() for i in range(0, len(envelopes) - 99, 100)]
    stored_once = served.stored_once
    cpu: dict[bool, list[float]] = {True: [], False: []}
    wall: dict[bool, list[float]] = {True: [], False: []}
    grew: dict[bool, int] = {True: 0, False: 0}
    with env.fresh_database("sqlite") as url, env.runtime(url) as rt:
        with TestClient(create_app(rt)) as client:
            days = 2 * lists * 10 // 2 + 30
            pilot = enrol(client, rt, people, (datetime.now(data.COPENHAGEN) - timedelta(days=days)).date())
        with rt.sessions() as session:
            gateway = authenticate(session, pilot.tokens["gateway"])
        service = IngestService(rt)
        for body in bodies[:3]:
            service.post(gateway, body)
        gc.collect()
        gc.freeze()
        try:
            for i, body in enumerate(bodies[3 : 3 + 2 * lists]):
                once = (i % 2 == 0) == (i // 2 % 2 == 0)  # once, twice, twice, once, ...: neither always first
                served.stored_once = lambda _name, once=once: once  # type: ignore[assignment,misc]
                size = _size(url)
                c0, w0 = time.thread_time(), time.perf_counter()
                service.post(gateway, body)
                cpu[once].append(time.thread_time() - c0)
                wall[once].append(time.perf_counter() - w0)
                grew[once] += _size(url) - size
        finally:
            served.stored_once = stored_once  # type: ignore[assignment]
        with rt.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    print(f"sqlite: lists of 100, {lists} each way alternated; ms per list (min / median / mean):")
    for once in (False, True):
        label = "once (resource)" if once else "twice (served_json)"
        print(
            f"  {label:<20} CPU {_ms(cpu[once])}   wall {_ms(wall[once])}"
            f"   file + WAL grew {grew[once] / lists / 1024:7.0f} kB a list"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
