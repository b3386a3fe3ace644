"""Served single envelopes alone, with where the CPU goes: ``homediag serve --workers N`` on loopback, 8 gateway
clients posting one envelope per request.

``python -m bench.served_singles [--engine postgresql] [--workers 2] [--requests 800] [--clients 8]
[--py-spy DIR]``: prints requests/s, and the CPU per request of the server's processes (its workers, from
``/proc``), of PostgreSQL's backends serving it (``pg_stat_activity`` of the bench database) and of this process
(the bench's clients), with the load average. ``--py-spy DIR`` records each worker with py-spy while the
clients post (``DIR/worker-<pid>.txt``, collapsed stacks; py-spy must be installed). Set-up (users, patients,
consents) goes through the in-process app, as ``bench --served`` does.

After the envelopes, the same clients ask ``GET /health/live`` as many times (``served.http_floor``): the single
requests per second the server answers with nothing done for them, which an envelope's cannot pass.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from homediag.api.app import create_app
from homediag.synthetic import synthetic_patients

from . import data, env
from .client import TestClient
from .pilot import enrol
from .served import _cpu_by_pid, _cpu_seconds, _tree, http_floor, serving
from .singles_client import post_singles


def _backends(url: str) -> list[int]:
    """The pids of PostgreSQL's backends connected to the bench database (the server's pools)."""
    if not url.startswith("postgresql"):
        return []
    engine = create_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            )
            return [int(r[0]) for r in rows]
    finally:
        engine.dispose()


def _post_httpx(base: str, token: str, bodies: list[bytes], clients: int) -> dict[int, int]:
    """What ``bench --served`` did before ``singles_client``: an ``httpx.Client`` per client thread."""
    from .served import _post_all

    gateway = {"Authorization": f"Bearer {token}"}
    threads = [threading.Thread(target=_post_all, args=(base, gateway, bodies[i::clients])) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {}


def run(
    engine: str, *, workers: int, requests: int, clients: int, spy: Path | None, client: str = "stdlib"
) -> dict[str, Any]:
    post = post_singles if client == "stdlib" else _post_httpx
    people = synthetic_patients(20)
    envelopes = data.cuff_envelopes(people, 60)
    warm, timed = envelopes[:100], envelopes[100 : 100 + requests]
    if len(timed) < requests:
        raise SystemExit(f"only {len(timed)} envelopes made for {requests} requests")
    with env.fresh_database(engine) as url, env.runtime(url) as rt:
        with TestClient(create_app(rt)) as app_client:
            pilot = enrol(app_client, rt, people, (datetime.now(data.COPENHAGEN) - timedelta(days=61)).date())
        with serving(url, rt.keys.to_json(), workers) as (base, root):
            token = pilot.tokens["gateway"]
            post(base, token, [json.dumps(e).encode() for e in warm], clients)  # warm-up: pools, caches
            server_pids = _tree(root)
            backends = _backends(url)
            spies: list[subprocess.Popen[bytes]] = []
            if spy is not None:
                spy.mkdir(parents=True, exist_ok=True)
                for pid in server_pids[1:]:
                    out = spy / f"worker-{pid}.txt"
                    spies.append(
                        subprocess.Popen(
                            [
                                "py-spy",
                                "record",
                                "--pid",
                                str(pid),
                                "--format",
                                "raw",
                                "--rate",
                                "200",
                                "--gil",  # only the thread holding the GIL: where the Python CPU goes
                                "--output",
                                str(out),
                                "--nonblocking",
                            ],  # fmt: skip
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                time.sleep(1.0)
            load0 = os.getloadavg()[0]
            s0, p0, c0 = _cpu_seconds(server_pids), _cpu_seconds(backends), time.process_time()
            by_pid0 = _cpu_by_pid(server_pids)
            t0 = time.perf_counter()
            statuses = post(base, token, [json.dumps(e).encode() for e in timed], clients)
            seconds = time.perf_counter() - t0
            server_cpu = _cpu_seconds(server_pids) - s0
            spent = _cpu_by_pid(server_pids)
            split = sorted((round((cpu - by_pid0[pid]) / seconds, 2) for pid, cpu in spent.items()), reverse=True)
            pg_cpu = _cpu_seconds(backends) - p0
            if not set(backends) <= set(_backends(url)) or pg_cpu < 0:
                pg_cpu = float("nan")  # a backend went away (its CPU no longer readable): not measured
            client_cpu = time.process_time() - c0
            load1 = os.getloadavg()[0]
            for p in spies:
                p.send_signal(2)  # SIGINT: py-spy writes what it sampled
            for p in spies:
                p.wait(timeout=60)
            floor = http_floor(base, server_pids, requests, clients)
    per = 1000 / requests
    return {
        "engine": engine,
        "workers": workers,
        "clients": clients,
        "client": client,
        "requests": requests,
        "statuses": statuses,
        "requests_per_s": round(requests / seconds, 1),
        "cpu_ms_per_request": {
            "server_processes": round(server_cpu * per, 2),
            "postgresql_backends": round(pg_cpu * per, 2),  # NaN: a backend went away meanwhile
            "bench_clients": round(client_cpu * per, 2),
        },
        "load_1min_start_end": [round(load0, 2), round(load1, 2)],
        "cores_busy_by_server_process": split,
        "floor_get_health_live": floor,
        "requests_per_s_over_floor": round(requests / seconds / floor["requests_per_s"], 3),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.served_singles")
    parser.add_argument("--engine", default="postgresql", choices=("sqlite", "postgresql"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--client", default="stdlib", choices=("stdlib", "httpx"), help="the bench's HTTP client")
    parser.add_argument("--py-spy", type=Path, default=None, dest="spy", help="record each worker into this folder")
    args = parser.parse_args(argv)
    result = run(
        args.engine,
        workers=args.workers,
        requests=args.requests,
        clients=args.clients,
        spy=args.spy,
        client=args.client,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda a: print(f"client thread failed: {a.exc_value}", file=sys.stderr)
    raise SystemExit(main(sys.argv[1:]))
