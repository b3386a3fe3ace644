"""Served for real: ``homediag serve --workers N`` (uvicorn processes) on loopback, driven by several clients.

- single envelopes from 8 concurrent gateway clients: requests/s;
- lists of 100 from one client, alone and then while four clinician clients search: the slow-down;
- with ``gateways`` > 1, also lists of 100 from that many gateway clients posting at once (each its own thread and
  connection, its own envelopes), after the lists from one: a region's gateways do not wait for each other;
- one gateway's lists as ``homediag send`` sends them (``homediag.sender``: as many lists at once as the server has
  workers, each on a connection of its own), in turns with the ceiling: what a back-fill with the platform's own
  sender stores;
- the server's resident memory (all its processes) sampled throughout: the largest sum and process.

The server runs in its own processes, so its time is not on the bench's core; the bench and the server
share the machine's cores. Set-up (users, patients, consents, seeding) goes through the in-process app.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from homediag.api.app import create_app
from homediag.sender import Item, Sender
from homediag.sender import lists as lists_of_items
from homediag.synthetic import SyntheticPatient

from . import ceiling, data, env, targets
from .client import TestClient
from .latency import clinician_queries
from .pilot import enrol
from .singles_client import get_many, post_singles


@dataclass(frozen=True)
class Apart:
    """``Rounds`` in the README's deployment for gateways that come in through their own network: a ``homediag serve
    --workers 1`` for the gateways and another for the clinicians, over the same store, so that no read shares a
    process with an ingest."""

    rounds: Rounds
    pss_max_mb: float  # the two servers' largest PSS, added

    def as_json(self) -> dict[str, Any]:
        return {
            "servers": "2 (homediag serve --workers 1 each: the gateway's, the clinicians')",
            **self.rounds.as_json(),
            "server_pss_mb_max_both": round(self.pss_max_mb, 1),
        }


@dataclass(frozen=True)
class ServedResult:
    engine: str
    workers: int
    single_requests: int
    single_clients: int
    single_seconds: float
    list_observations_alone: int
    list_seconds_alone: float
    list_observations_mixed: int
    list_seconds_mixed: float
    searches_during_mixed: int
    search_p95_ms_mixed: float
    rss_max_total_mb: float
    rss_max_process_mb: float
    ceilings: list[ceiling.Ceiling]
    rss_at_start: list[dict[str, Any]]
    rss_max_by_process: list[dict[str, Any]]
    waits: dict[str, Any]
    pss_at_start_total_mb: float = 0.0
    pss_max_total_mb: float = 0.0
    single_in_process_per_s: float = 0.0
    single_cpu_seconds: tuple[float, float] = (0.0, 0.0)  # the server's processes, this process (the clients)
    list_cpu_seconds_alone: float = 0.0  # the server's processes' CPU per list sent alone
    list_client_cpu_seconds_alone: float = 0.0  # the client's thread's CPU per list sent alone
    gateways: int = 1
    list_observations_gateways: int = 0  # lists from ``gateways`` clients at once (none when ``gateways`` is 1)
    list_seconds_gateways: float = 0.0
    # per list: the server's processes, the clients' threads
    list_cpu_seconds_gateways: tuple[float, float] = (0.0, 0.0)
    list_cores_gateways: list[float] = field(default_factory=list)  # each server process's CPU / the lists' wall time
    mixed_cpu: dict[str, Any] = field(default_factory=dict)  # where the cores went while ingest and searches ran
    rounds: Rounds | None = None  # lists alone and searched, alternated in rounds
    apart: Apart | None = None  # the same rounds with gateways and clinicians on servers of their own
    single_floor: dict[str, Any] = field(default_factory=dict)  # ``http_floor`` from the singles' clients
    ceiling_rounds: CeilingRounds | None = None  # lists alone and the ceiling, in turns
    gateways_ceiling_rounds: CeilingRounds | None = None  # lists from ``gateways`` at once and the ceiling, in turns
    # one gateway's lists sent by ``homediag send`` (``homediag.sender``: ``workers`` lists at once) and the ceiling
    send_ceiling_rounds: CeilingRounds | None = None

    def as_json(self) -> dict[str, Any]:
        alone = self.list_observations_alone / self.list_seconds_alone
        mixed = self.list_observations_mixed / self.list_seconds_mixed
        return {
            "engine": self.engine,
            "workers": self.workers,
            "single": {
                "clients": self.single_clients,
                "requests": self.single_requests,
                "seconds": round(self.single_seconds, 2),
                "requests_per_s": round(self.single_requests / self.single_seconds, 1),
                "in_process_one_thread_per_s": round(self.single_in_process_per_s, 1),
                "cpu_ms_per_request_server": round(self.single_cpu_seconds[0] / self.single_requests * 1000, 2),
                "cpu_ms_per_request_bench_clients": round(self.single_cpu_seconds[1] / self.single_requests * 1000, 2),
                "floor_get_health_live": self.single_floor,
                "requests_per_s_over_floor": round(
                    self.single_requests / self.single_seconds / self.single_floor["requests_per_s"], 3
                )
                if self.single_floor
                else None,
            },
            "lists_of_100": {
                "alone_observations_per_s": round(alone, 1),
                "with_4_searching_observations_per_s": round(mixed, 1),
                "slowdown_with_4_searching": round(alone / mixed, 2),
                "server_cpu_ms_per_list_alone": round(self.list_cpu_seconds_alone * 1000, 1),
                "searches_during": self.searches_during_mixed,
                "search_p95_ms_during": round(self.search_p95_ms_mixed, 1),
            },
            "ceiling": [c.as_json() for c in self.ceilings],
            "lists_alone_over_ceiling": {c.variant: round(alone / c.per_s, 3) for c in self.ceilings},
            **self._gateways_json(alone),
            "single_envelopes_per_s_over_ceiling_envelopes_per_s": {
                c.variant: round((self.single_requests / self.single_seconds) / (c.per_s / 2.03), 3)
                for c in self.ceilings
            },
            "server_rss_mb": {
                "max_total": round(self.rss_max_total_mb, 1),
                "max_process": round(self.rss_max_process_mb, 1),
                "at_start_by_process": self.rss_at_start,
                "max_by_process": self.rss_max_by_process,
            },
            "server_pss_mb": {
                "at_start_total": round(self.pss_at_start_total_mb, 1),
                "max_total": round(self.pss_max_total_mb, 1),
            },
            "what_sessions_waited_on_during_mixed": self.waits,
            "mixed_cpu": self.mixed_cpu,
            **({"lists_of_100_rounds": self.rounds.as_json()} if self.rounds is not None else {}),
            **(
                {"lists_of_100_and_ceiling_in_rounds": self.ceiling_rounds.as_json()}
                if self.ceiling_rounds is not None
                else {}
            ),
            **(
                {f"lists_of_100_{self.gateways}_gateways_and_ceiling_in_rounds": self.gateways_ceiling_rounds.as_json()}
                if self.gateways_ceiling_rounds is not None
                else {}
            ),
            **(
                {
                    "lists_of_100_one_gateway_by_homediag_send_and_ceiling_in_rounds": {
                        "lists_at_once": self.workers,
                        **self.send_ceiling_rounds.as_json(),
                    }
                }
                if self.send_ceiling_rounds is not None
                else {}
            ),
            **({"apart": self.apart.as_json()} if self.apart is not None else {}),
            "targets": self._targets(),
        }

    def _targets(self) -> dict[str, dict[str, Any]]:
        """Issue 11's served targets, each as measured in this run, its bound and whether it is met (the series and
        growth targets are ``--scale``'s). Lists: over the ceiling in turns (``CeilingRounds``); one list's target is
        2× on SQLite, 1× on PostgreSQL. Single envelopes: the target is stated for PostgreSQL (several workers)."""
        found: dict[str, float] = {
            "single_envelopes_per_s": self.single_requests / self.single_seconds,
            "server_pss_max_mb": self.pss_max_total_mb,
        }
        if self.ceiling_rounds is not None:
            found["lists_one_gateway_over_ceiling_in_turns"] = self.ceiling_rounds.over
        if self.gateways_ceiling_rounds is not None:
            found[f"lists_{self.gateways}_gateways_over_ceiling_in_turns"] = self.gateways_ceiling_rounds.over
        if self.send_ceiling_rounds is not None:
            # the same gateway's lists as ``homediag send`` sends them: as many at once as the server has workers
            found["lists_one_gateway_by_homediag_send_over_ceiling_in_turns"] = self.send_ceiling_rounds.over
        if self.rounds is not None:
            found["mixed_slowdown_in_rounds"] = self.rounds.slowdown
        bounds = {name: targets.served_bound(name, self.engine) for name in found}
        return {
            name: {"measured": round(value, 3), "target": bounds[name], "met": targets.met(value, bounds[name])}
            for name, value in found.items()
        }

    def _gateways_json(self, alone: float) -> dict[str, Any]:
        """The lists from one gateway and from ``gateways`` at once, side by side (nothing more when 1)."""
        cpu_alone = {
            "server_cpu_ms_per_list": round(self.list_cpu_seconds_alone * 1000, 1),
            "bench_client_cpu_ms_per_list": round(self.list_client_cpu_seconds_alone * 1000, 1),
        }
        if self.gateways == 1 or not self.list_seconds_gateways:
            return {"lists_of_100_by_gateways": {"1": {"observations_per_s": round(alone, 1), **cpu_alone}}}
        rate = self.list_observations_gateways / self.list_seconds_gateways
        return {
            "lists_of_100_by_gateways": {
                "1": {"observations_per_s": round(alone, 1), **cpu_alone},
                str(self.gateways): {
                    "observations_per_s": round(rate, 1),
                    "server_cpu_ms_per_list": round(self.list_cpu_seconds_gateways[0] * 1000, 1),
                    "bench_client_cpu_ms_per_list": round(self.list_cpu_seconds_gateways[1] * 1000, 1),
                    "server_cores_busy_by_process": self.list_cores_gateways,
                },
            },
            f"lists_{self.gateways}_gateways_over_ceiling": {
                c.variant: round(rate / c.per_s, 3) for c in self.ceilings
            },
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += frontier
    return found


def _proc_mb(pid: int, file: str, field: str) -> float:
    """A process's ``field`` (in kB) of ``/proc/<pid>/<file>``, in MB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def serving(url: str, keys_json: str, workers: int) -> Iterator[tuple[str, int]]:
    """``homediag serve --workers N`` over ``url``: (its base URL, its pid) once it answers; stopped after."""
    port = _free_port()
    environment = {**os.environ, "HOMEDIAG_DATABASE_URL": url, "HOMEDIAG_KEYS_JSON": keys_json}
    command = [sys.executable, "-m", "homediag.cli", "serve", "--port", str(port), "--workers", str(workers)]
    log = tempfile.TemporaryFile()  # uvicorn's log: a pipe nobody reads would fill and stall the server
    server = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/fhir/metadata", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"the server did not start: {log.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield base, server.pid
    finally:
        log.close()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """Each process's user and system CPU so far (``_cpu_seconds``)."""
    return {pid: _cpu_seconds([pid]) for pid in pids}


def _cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of the processes ``pids`` so far (from ``/proc``; 0 for one gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def http_floor(base: str, server_pids: list[int], requests: int, clients: int) -> dict[str, Any]:
    """``GET /health/live`` ``requests`` times from ``clients`` kept-alive clients (``singles_client.get_many``):
    requests/s and the server's CPU per request. What the server's HTTP stack costs alone (uvicorn, the
    middlewares, the route's policy, a thread of the pool, a JSON answer), with no token, no body and no database:
    the most single requests per second this machine serves with nothing done for them."""
    get_many(base, "/health/live", min(requests, 200), clients)  # warm-up
    cpu0, t0 = _cpu_seconds(server_pids), time.perf_counter()
    statuses = get_many(base, "/health/live", requests, clients)
    seconds = time.perf_counter() - t0
    if statuses.get(200) != requests:
        raise RuntimeError(f"GET /health/live: {statuses} of {requests} requests")
    return {
        "requests_per_s": round(requests / seconds, 1),
        "cpu_ms_per_request_server": round((_cpu_seconds(server_pids) - cpu0) * 1000 / requests, 2),
    }


def _rss_mb(pid: int) -> float:
    return _proc_mb(pid, "status", "VmRSS:")


def _pss_mb(pid: int) -> float:
    """Proportional set size: each shared page counted once across the processes that share it, so the PSS of a
    process tree sums to what it holds in memory (``/proc/<pid>/smaps_rollup``)."""
    return _proc_mb(pid, "smaps_rollup", "Pss:")


def _role(pid: int, root: int) -> str:
    """What a process of the server is: the supervisor (``homediag serve``), a worker, or a helper."""
    if pid == root:
        return "supervisor"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    return "helper (multiprocessing)" if "resource_tracker" in command or "semaphore" in command else "worker"


class MemoryWatch:
    """Samples the resident memory of a process tree every 0.2 s in a thread: the largest sum, the largest
    process, and each process's largest (by role: the supervisor, each worker); and the largest sum of PSS (pages
    the processes share counted once), at start-up and throughout."""

    def __init__(self, root: int) -> None:
        self.root, self.total, self.largest, self.pss_total = root, 0.0, 0.0, 0.0
        self.pss_at_start = 0.0
        self.by_process: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self.sample()  # at start-up, before any request
        self.at_start = dict(self.by_process)
        self.pss_at_start = self.pss_total
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        sizes = {pid: _rss_mb(pid) for pid in _tree(self.root)}
        for pid, size in sizes.items():
            role, before = self.by_process.get(pid, (_role(pid, self.root), 0.0))
            self.by_process[pid] = (role, max(before, size))
        total = sum(sizes.values())
        self.total, self.largest = max(self.total, total), max(self.largest, max(sizes.values(), default=0.0))
        self.pss_total = max(self.pss_total, sum(_pss_mb(pid) for pid in sizes))

    def per_process(self, table: dict[int, tuple[str, float]]) -> list[dict[str, Any]]:
        return [{"pid": pid, "role": role, "rss_mb": round(mb, 1)} for pid, (role, mb) in sorted(table.items())]

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class WaitWatch:
    """PostgreSQL: samples what the server's sessions are doing every 20 ms (``pg_stat_activity``): per wait
    event and statement, how many samples found a session active or waiting. A lock on ``audit_head`` shows
    as ``Lock:transactionid`` or ``Lock:tuple`` on the head's ``SELECT ... FOR UPDATE``."""

    def __init__(self, url: str) -> None:
        from collections import Counter

        from sqlalchemy import create_engine

        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._engine = (
            create_engine(url, pool_size=1, connect_args={"application_name": "bench-watch"})
            if url.startswith("postgresql")
            else None
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self._engine is not None:
            self._thread.start()

    def _run(self) -> None:
        from sqlalchemy import text

        assert self._engine is not None
        query = text(
            "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') AS waiting, left(query, 70) AS query"
            " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND state = 'active'"
        )
        with self._engine.connect() as conn:
            while not self._stop.wait(0.02):
                self.samples += 1
                for row in conn.execute(query):
                    self.counts[f"{row.waiting} | {' '.join(row.query.split())}"] += 1
                conn.rollback()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._engine is None:
            return {"sampled": False, "why": "SQLite: one process, no server to ask"}
        self._thread.join()
        self._engine.dispose()
        return {
            "sampled": True,
            "samples_every_20_ms": self.samples,
            "active_session_samples_by_wait_and_statement": dict(self.counts.most_common(12)),
        }


class BackendCpu:
    """PostgreSQL: the CPU its backends serving the server's connections to the bench's database spent (from
    ``/proc``; the bench's own sessions left out), between ``start`` and ``seconds``. 0 on SQLite."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self._engine = (
            create_engine(url, pool_size=1, connect_args={"application_name": "bench-cpu"})
            if url.startswith("postgresql")
            else None
        )
        self._cpu0: dict[int, float] = {}

    def _pids(self) -> list[int]:
        from sqlalchemy import text

        if self._engine is None:
            return []
        query = text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'"
            " AND application_name NOT LIKE 'bench-%'"
        )
        with self._engine.connect() as conn:
            return [int(pid) for pid in conn.scalars(query)]

    def start(self) -> None:
        self._cpu0 = _cpu_by_pid(self._pids())

    def seconds(self) -> float:
        """CPU since ``start``: of the backends then, and all of those started since."""
        return sum(cpu - self._cpu0.get(pid, 0.0) for pid, cpu in _cpu_by_pid(self._pids()).items())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class Searching:
    """Four clinician clients searching ``base`` in threads of this process, each its 90-day blood-pressure series of
    one patient after another, from one second after the start (connections made, caches warm) until ``stop``;
    ``pause`` holds them (once their searches in flight are answered) until ``resume``."""

    def __init__(self, base: str, pilot: Any, clients: int = 4) -> None:
        self.latencies: list[float] = []
        self.sink: list[float] | None = None  # also records each latency here while set
        self._cpu: list[float] = []
        self._stop, self._active = threading.Event(), threading.Event()
        self._active.set()
        self._in_flight = 0
        self._lock = threading.Lock()
        since = (datetime.now(data.COPENHAGEN) - timedelta(days=90)).date().isoformat()
        self._query, self._base, self._pilot = clinician_queries(since)[0], base, pilot
        self._threads = [threading.Thread(target=self._search, args=(n,)) for n in range(clients)]
        for t in self._threads:
            t.start()
        time.sleep(1.0)

    def _search(self, n: int) -> None:
        cpu0, pilot = time.thread_time(), self._pilot
        with httpx.Client(base_url=self._base, timeout=60, headers=pilot.auth("clinician")) as http:
            i = n
            while not self._stop.is_set():
                if not self._active.wait(0.05):
                    continue
                with self._lock:
                    self._in_flight += 1
                try:
                    s0 = time.perf_counter()
                    response = http.get(
                        "/fhir/Observation", params=self._query.params(pilot.patient_ids[i % len(pilot.patient_ids)])
                    )
                    latency = time.perf_counter() - s0
                finally:
                    with self._lock:
                        self._in_flight -= 1
                self.latencies.append(latency)
                sink = self.sink
                if sink is not None:
                    sink.append(latency)
                response.raise_for_status()
                i += 1
        self._cpu.append(time.thread_time() - cpu0)

    def pause(self) -> None:
        self._active.clear()
        while self._in_flight:
            time.sleep(0.001)

    def resume(self) -> None:
        self._active.set()

    def stop(self) -> float:
        """Stop the clients; the CPU their threads spent."""
        self._stop.set()
        self._active.set()
        for t in self._threads:
            t.join()
        return sum(self._cpu)


@dataclass(frozen=True)
class Rounds:
    """Lists of 100 from one gateway in halves alone and while four clients search, over several rounds (alone first
    in the even rounds, searched first in the odd ones), so that a machine whose speed drifts during the run weighs
    on both alike: one phase alone and one searched after it, minutes apart, swung the slow-down from 0.8 to 2.0 on
    session 12's machine."""

    rounds: int
    alone_observations: int
    alone_seconds: float
    mixed_observations: int
    mixed_seconds: float
    searches: int
    search_p95_ms: float

    @property
    def slowdown(self) -> float:
        """Lists alone over lists while four clients search (Observations per second)."""
        return (self.alone_observations / self.alone_seconds) / (self.mixed_observations / self.mixed_seconds)

    def as_json(self) -> dict[str, Any]:
        alone = self.alone_observations / self.alone_seconds
        mixed = self.mixed_observations / self.mixed_seconds
        return {
            "rounds": self.rounds,
            "alone_observations_per_s": round(alone, 1),
            "with_4_searching_observations_per_s": round(mixed, 1),
            "slowdown_with_4_searching": round(self.slowdown, 2),
            "searches_per_s_during": round(self.searches / self.mixed_seconds, 1),
            "search_p95_ms_during": round(self.search_p95_ms, 1),
        }


ROUNDS = 4
"""Rounds of ``Rounds`` (each list chunk halved: alone, searched) and of ``CeilingRounds``."""


@dataclass(frozen=True)
class CeilingRounds:
    """Lists of 100 (from one gateway, or from several at once) and the same-run ceiling with full validation
    (``ceiling``), measured in turns over several rounds (the ceiling first in the even rounds, the lists first in
    the odd ones; the server idles while the ceiling runs in this process), so that a machine whose speed drifts
    weighs on both alike. Measured apart, the ceiling after the server and the lists minutes before it, one build's
    ratio swung from 1.08 to 2.28 within half an hour on session 13's machine, and the ceiling alone from 840 to
    1,533 Observations/s."""

    rounds: int
    ceiling_observations: int
    ceiling_seconds: float
    list_observations: int
    list_seconds: float

    @property
    def over(self) -> float:
        """The lists' Observations per second over the ceiling's."""
        return (self.list_observations / self.list_seconds) / (self.ceiling_observations / self.ceiling_seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "ceiling_full_validation_observations_per_s": round(self.ceiling_observations / self.ceiling_seconds, 1),
            "lists_observations_per_s": round(self.list_observations / self.list_seconds, 1),
            "lists_over_ceiling": round(self.over, 3),
        }


def _ceiling_rounds(
    rt: Any, post: Callable[[list[Any]], int], bodies: list[Any], fresh: list[dict[str, Any]], rounds: int
) -> CeilingRounds:
    """``CeilingRounds`` of the lists ``bodies`` sent by ``post`` (the Observations it created) and the ceiling over
    the envelopes ``fresh``. A body is what ``post`` sends: a list's JSON, or its envelopes (``_send_lists``)."""
    lists, envelopes = len(bodies) // rounds, len(fresh) // rounds
    tally = [0, 0.0, 0, 0.0]  # the ceiling's Observations and seconds, the lists'
    for r in range(rounds):

        def by_ceiling(r: int = r) -> None:
            measured = ceiling.measure(rt, fresh[r * envelopes : (r + 1) * envelopes], full_validation=True)
            tally[0] += measured.observations
            tally[1] += measured.seconds

        def by_lists(r: int = r) -> None:
            t0 = time.perf_counter()
            tally[2] += post(bodies[r * lists : (r + 1) * lists])
            tally[3] += time.perf_counter() - t0

        for turn in (by_ceiling, by_lists) if r % 2 == 0 else (by_lists, by_ceiling):
            turn()
    return CeilingRounds(rounds, int(tally[0]), tally[1], int(tally[2]), tally[3])


def _rounds(base: str, headers: dict[str, str], searching: Searching, bodies: list[bytes], rounds: int) -> Rounds:
    """``Rounds`` of ``bodies`` posted to ``base`` while ``searching`` searches (paused for the halves alone)."""
    per = len(bodies) // (2 * rounds)
    alone, mixed, during = [0, 0.0], [0, 0.0], []
    for r in range(rounds):
        chunk = bodies[2 * r * per : (2 * r + 2) * per]
        halves = [(alone, chunk[:per]), (mixed, chunk[per:])]
        for tally, part in halves if r % 2 == 0 else halves[::-1]:
            if tally is alone:
                searching.pause()
                searching.sink = None
            else:
                searching.sink = during
                searching.resume()
            t0 = time.perf_counter()
            tally[0] += _post_all(base, headers, part)
            tally[1] += time.perf_counter() - t0
    searching.sink = None
    return Rounds(rounds, int(alone[0]), alone[1], int(mixed[0]), mixed[1], len(during), _p95_ms(during))


def _of_their_own(people: list[SyntheticPatient], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` cuff envelopes of ``people`` from yesterday back, as many days as that takes, drawn with ``seed`` (other
    minutes and values than the run's own envelopes on the same days: readings not stored yet)."""
    return data.cuff_envelopes(people, -(-n // (len(people) * len(data.HOURS))), seed=seed)[:n]


def _lists_of(envelopes: list[dict[str, Any]]) -> list[bytes]:
    """The bodies of lists of 100 envelopes."""
    return [json.dumps(envelopes[i : i + 100]).encode() for i in range(0, len(envelopes), 100)]


def _send_lists(base: str, token: str, lists: list[list[Item]], at_once: int) -> int:
    """The lists of envelopes ``lists`` sent by ``homediag send``'s ``Sender`` (``at_once`` in flight, each on a
    connection of its own); the number of Observations created. Any envelope not created fails the bench."""
    created = 0
    for sent in Sender(base, token, at_once=at_once, attempts=1).send(lists):
        if sent.outcome != "created":
            raise RuntimeError(f"homediag send: {sent.where} {sent.outcome}: {sent.issues}")
        created += len(sent.observations)
    return created


def _items_of(envelopes: list[dict[str, Any]]) -> list[list[Item]]:
    """``homediag send``'s lists of 100 of ``envelopes`` (``sender.Item``s)."""
    return list(lists_of_items((Item(f"bench[{i}]", e) for i, e in enumerate(envelopes)), 100))


def _p95_ms(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000 if ordered else float("nan")


def _apart(url: str, keys_json: str, pilot: Any, bodies: list[bytes], rounds: int, say: Any) -> Apart:
    """``Apart``: the gateway's lists to its own server in ``rounds``, four clients searching the clinicians' server
    in every other half (the first list warms the gateway's server up, as the shared one was)."""
    gateway = pilot.auth("gateway")
    with serving(url, keys_json, 1) as (gateway_base, gateway_pid), serving(url, keys_json, 1) as (base, reader_pid):
        watches = [MemoryWatch(gateway_pid), MemoryWatch(reader_pid)]
        _post_all(gateway_base, gateway, bodies[:1])
        searching = Searching(base, pilot)
        measured = _rounds(gateway_base, gateway, searching, bodies[1:], rounds)
        searching.stop()
        for watch in watches:
            watch.stop()
    result = Apart(measured, sum(w.pss_total for w in watches))
    say(f"apart (a server for the gateway, another for the clinicians): {result.as_json()}")
    return result


def _post_all(base: str, headers: dict[str, str], bodies: list[bytes]) -> int:
    """POST each body in turn; the number of Observations created."""
    created = 0
    # verify=False: plain HTTP on loopback; verifying would load the CA store at each client's start (≈ 30 ms of
    # CPU, in the timed run: the most of what a client spent a list of 100 when it did)
    headers = {**headers, "Content-Type": "application/json"}
    with httpx.Client(base_url=base, timeout=300, headers=headers, verify=False) as http:
        for body in bodies:
            response = http.post("/ingest", content=body)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"POST /ingest answered {response.status_code}: {response.text[:300]}")
            payload = response.json()
            for result in payload.get("results", [payload]):
                created += sum(1 for o in result["observations"] if o["outcome"] == "created")
    return created


def _post_timed(base: str, headers: dict[str, str], bodies: list[bytes]) -> tuple[int, float]:
    """``_post_all`` on this thread: the Observations created and the CPU this thread spent (the client's own, not
    the bench's other threads')."""
    cpu0 = time.thread_time()
    created = _post_all(base, headers, bodies)
    return created, time.thread_time() - cpu0


def _post_at_once(base: str, headers: dict[str, str], shares: list[list[bytes]]) -> tuple[int, float]:
    """Each share of bodies POSTed by a client of its own (a thread), all at once: the number of Observations
    created, and the CPU the clients' threads spent. A client's failure is raised here once all are done.

    Each list on a connection of its own (``Connection: close``), as a gateway posting now and then sends it: a
    connection kept alive stays with the worker that accepted it, and two gateways' connections accepted by the same
    worker (half the time, with two) would have their lists share that worker's one interpreter while the other
    worker idles."""
    headers = {**headers, "Connection": "close"}
    done: list[tuple[int, float]] = []
    failed: list[BaseException] = []

    def gateway(bodies: list[bytes]) -> None:
        try:
            done.append(_post_timed(base, headers, bodies))
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            failed.append(exc)

    threads = [threading.Thread(target=gateway, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]
    return sum(n for n, _ in done), sum(cpu for _, cpu in done)


def run(
    engine: str,
    people: list[SyntheticPatient],
    *,
    workers: int,
    singles: int,
    lists: int,
    say: Any,
    gateways: int = 1,
    apart: bool = False,
) -> ServedResult:
    # the lists from several gateways at once, and those sent to servers apart, take envelopes of their own: as many
    # more days (older ones, seeded), so the store seeded directly holds as many readings as with one gateway
    rounds_n, apart_n = 2 * lists * 100, (2 * lists + 1) * 100 if apart else 0
    extra = (gateways * lists * 100 if gateways > 1 else 0) + rounds_n + apart_n
    days = 250 + -(-extra // (len(people) * len(data.HOURS)))
    envelopes = data.cuff_envelopes(people, days)
    single = envelopes[:singles]
    alone = envelopes[singles : singles + lists * 100]
    mixed = envelopes[singles + lists * 100 : singles + 2 * lists * 100]
    at_once = envelopes[singles + 2 * lists * 100 : singles + (2 + gateways) * lists * 100] if gateways > 1 else []
    sent = singles + (2 + (gateways if gateways > 1 else 0)) * lists * 100
    in_rounds, to_apart = envelopes[sent : sent + rounds_n], envelopes[sent + rounds_n : sent + rounds_n + apart_n]
    seeded = envelopes[sent + rounds_n + apart_n :]
    with env.fresh_database(engine) as url, env.runtime(url) as rt:
        with TestClient(create_app(rt)) as client:
            consent_from = (datetime.now(data.COPENHAGEN) - timedelta(days=days + 1)).date()
            pilot = enrol(client, rt, people, consent_from)
        data.seed(rt, seeded)
        with serving(url, rt.keys.to_json(), workers) as (base, server_pid):
            watch = MemoryWatch(server_pid)
            gateway = pilot.auth("gateway")
            say(f"{engine}: served by {workers} workers at {base}")

            # single envelopes from 8 concurrent clients (``singles_client``: the standard library's, cheap for the
            # bench, which shares the machine's cores with the server), with the CPU each side spent
            clients = 8
            server_pids = _tree(server_pid)
            server_cpu0, client_cpu0 = _cpu_seconds(server_pids), time.process_time()
            t0 = time.perf_counter()
            post_singles(base, pilot.tokens["gateway"], [json.dumps(e).encode() for e in single], clients)
            single_seconds = time.perf_counter() - t0
            single_cpu = (_cpu_seconds(server_pids) - server_cpu0, time.process_time() - client_cpu0)
            rate = len(single) / single_seconds
            say(
                f"{engine}: {len(single)} single envelopes from {clients} clients: {rate:.0f} req/s; CPU per request"
                f" {single_cpu[0] / len(single) * 1000:.2f} ms in the server, {single_cpu[1] / len(single) * 1000:.2f}"
                " ms in the bench's clients (and the bench's threads)"
            )
            floor = http_floor(base, server_pids, len(single), clients)
            say(f"{engine}: GET /health/live from the same clients (the HTTP stack alone): {floor}")

            alone_bodies = _lists_of(alone)  # made before the clock starts
            backends = BackendCpu(url)
            backends.start()
            server_cpu0 = _cpu_seconds(server_pids)
            t0 = time.perf_counter()
            alone_created, client_cpu = _post_timed(base, gateway, alone_bodies)
            alone_seconds = time.perf_counter() - t0
            list_cpu = _cpu_seconds(server_pids) - server_cpu0
            list_backend_cpu = backends.seconds() / len(alone_bodies)
            list_client_cpu = client_cpu / len(alone_bodies)
            say(
                f"{engine}: lists of 100 alone: {alone_created / alone_seconds:.0f} Observations/s;"
                f" server CPU {list_cpu / len(alone_bodies) * 1000:.0f} ms per list,"
                f" the client's {list_client_cpu * 1000:.1f} ms"
            )
            # as many lists again and the ceiling in turns, each over readings of its own (another seed: other minutes
            # and values on the same days, none stored yet), the ceiling over 1,000 envelopes as the one below
            paired_rounds = _ceiling_rounds(
                rt,
                lambda part: _post_all(base, gateway, part),
                _lists_of(_of_their_own(people, lists * 100, seed=65)),
                _of_their_own(people, 1000, seed=64),
                ROUNDS,
            )
            say(f"{engine}: lists of 100 alone and the ceiling, in turns: {paired_rounds.as_json()}")
            gateways_created, gateways_seconds, gateways_cpu, gateways_split = 0, 0.0, (0.0, 0.0), []
            gateways_rounds: CeilingRounds | None = None
            if gateways > 1:  # each gateway its own lists: every gateways-th list of the share
                bodies = _lists_of(at_once)
                shares = [bodies[i::gateways] for i in range(gateways)]
                server_cpu0 = _cpu_by_pid(server_pids)
                t0 = time.perf_counter()
                gateways_created, client_cpu = _post_at_once(base, gateway, shares)
                gateways_seconds = time.perf_counter() - t0
                by_pid = {pid: cpu - server_cpu0[pid] for pid, cpu in _cpu_by_pid(server_pids).items()}
                gateways_cpu = (sum(by_pid.values()) / len(bodies), client_cpu / len(bodies))
                gateways_split = sorted((round(cpu / gateways_seconds, 2) for cpu in by_pid.values()), reverse=True)
                say(
                    f"{engine}: lists of 100 from {gateways} gateways at once:"
                    f" {gateways_created / gateways_seconds:.0f} Observations/s; server CPU"
                    f" {gateways_cpu[0] * 1000:.0f} ms per list, the clients' {gateways_cpu[1] * 1000:.1f} ms;"
                    f" cores busy by server process {gateways_split}"
                )
                # as many lists again from the gateways in turns with the ceiling (readings of their own: another seed)
                gateways_rounds = _ceiling_rounds(
                    rt,
                    lambda part: _post_at_once(base, gateway, [part[i::gateways] for i in range(gateways)])[0],
                    _lists_of(_of_their_own(people, gateways * lists * 100, seed=66)),
                    _of_their_own(people, 1000, seed=67),
                    ROUNDS,
                )
                turns = gateways_rounds.as_json()
                say(f"{engine}: lists of 100 from {gateways} gateways and the ceiling, in turns: {turns}")
            # one gateway's lists as ``homediag send`` sends them (as many at once as workers), in turns, as above
            token = pilot.tokens["gateway"]
            send_rounds = _ceiling_rounds(
                rt,
                lambda part: _send_lists(base, token, part, workers),
                _items_of(_of_their_own(people, lists * 100, seed=68)),
                _of_their_own(people, 1000, seed=69),
                ROUNDS,
            )
            turns = send_rounds.as_json()
            say(f"{engine}: one gateway's lists of 100 by homediag send and the ceiling, in turns: {turns}")

            searching = Searching(base, pilot)
            waiting = WaitWatch(url)
            mixed_bodies = _lists_of(mixed)
            backends.start()
            latencies = searching.latencies
            server_cpu0, searches0 = _cpu_seconds(server_pids), len(latencies)
            t0 = time.perf_counter()
            mixed_created, mixed_client_cpu = _post_timed(base, gateway, mixed_bodies)
            mixed_seconds = time.perf_counter() - t0
            mixed_server_cpu, mixed_backend_cpu = _cpu_seconds(server_pids) - server_cpu0, backends.seconds()
            searches = len(latencies) - searches0
            waits = waiting.stop()
            rounds = _rounds(base, gateway, searching, _lists_of(in_rounds), ROUNDS)
            say(f"{engine}: lists of 100 alone and with 4 clients searching, in rounds: {rounds.as_json()}")
            searcher_cpu = searching.stop()
            backends.close()
            mixed_cpu = _mixed_cpu(
                mixed_seconds, len(mixed_bodies), searches, (mixed_server_cpu, mixed_backend_cpu, mixed_client_cpu),
                (list_cpu / len(alone_bodies), list_backend_cpu), searcher_cpu / max(1, len(latencies)),
            )  # fmt: skip
            say(f"{engine}: the mixed phase's cores: {mixed_cpu}")
            watch.stop()
            p95 = _p95_ms(latencies)
            say(
                f"{engine}: lists of 100 with 4 clients searching: {mixed_created / mixed_seconds:.0f} Observations/s; "
                f"{len(latencies)} searches, p95 {p95:.0f} ms; server RSS max {watch.total:.0f} MB in all,"
                f" PSS {watch.pss_at_start:.0f} MB at start, max {watch.pss_total:.0f} MB"
            )
        apart_result = _apart(url, rt.keys.to_json(), pilot, _lists_of(to_apart), ROUNDS, say) if apart else None
        # the same-run ceiling, in this process, once the server is gone (a cuff envelope makes ~2.03 Observations)
        # 1,000 envelopes each, as many days as that takes: with the quick run's 5 patients, 25 days made 250, measured
        # in 0.1-0.2 s, and the ceiling swung by a fifth between runs (1,407-2,728 Observations/s in session 12's A/Bs)
        fresh = [_of_their_own(people, 1000, seed=s) for s in (61, 62)]
        ceilings = [
            ceiling.measure(rt, fresh[0], full_validation=True),
            ceiling.measure(rt, fresh[1], full_validation=False),
        ]
        full, rules = ceilings
        say(f"{engine}: ceiling {full.per_s:.0f} (full validation) / {rules.per_s:.0f} (rules) Observations/s")
        in_process = _singles_in_process(rt, pilot.tokens["gateway"], data.cuff_envelopes(people, 25, seed=63)[:200])
        say(f"{engine}: single envelopes in process, one thread, no HTTP: {in_process:.0f}/s")
        return ServedResult(
            engine,
            workers,
            len(single),
            clients,
            single_seconds,
            alone_created,
            alone_seconds,
            mixed_created,
            mixed_seconds,
            len(latencies),
            p95,
            watch.total,
            watch.largest,
            ceilings,
            watch.per_process(watch.at_start),
            watch.per_process(watch.by_process),
            waits,
            watch.pss_at_start,
            watch.pss_total,
            in_process,
            single_cpu,
            list_cpu / len(alone_bodies),
            list_client_cpu,
            gateways,
            gateways_created,
            gateways_seconds,
            gateways_cpu,
            gateways_split,
            mixed_cpu,
            rounds,
            apart_result,
            floor,
            paired_rounds,
            gateways_rounds,
            send_rounds,
        )


def _mixed_cpu(
    seconds: float,
    lists: int,
    searches: int,
    spent: tuple[float, float, float],
    alone: tuple[float, float],
    searcher_per_search: float,
) -> dict[str, Any]:
    """Where the cores went while the lists and the searches ran: the server's processes, PostgreSQL's backends and
    the gateway client over the phase's wall time; the searches' share of the server and the backends estimated as
    what they spent beyond the lists' cost alone (``alone``: per list), per search; the bench's searching clients'
    own CPU per search (their threads)."""
    server, backends, client = spent
    return {
        "cores_server": round(server / seconds, 2),
        "cores_postgresql_backends": round(backends / seconds, 2),
        "cores_gateway_client": round(client / seconds, 3),
        "cores_bench_searchers": round(searcher_per_search * searches / seconds, 2),
        "searches_in_phase": searches,
        "server_cpu_ms_per_search_est": round((server - lists * alone[0]) / max(1, searches) * 1000, 2),
        "postgresql_cpu_ms_per_search_est": round((backends - lists * alone[1]) / max(1, searches) * 1000, 2),
        "bench_searcher_cpu_ms_per_search": round(searcher_per_search * 1000, 2),
        "postgresql_cpu_ms_per_list_alone": round(alone[1] * 1000, 1),
    }


def _singles_in_process(rt: Any, token: str, envelopes: list[dict[str, Any]]) -> float:
    """The same-run reference for the served single envelopes: ``IngestService.post`` of each envelope on this
    thread (no HTTP, no token lookup, no concurrency), after 20 to warm up; envelopes/s."""
    import json

    from homediag.ingest import IngestService
    from homediag.users import authenticate

    with rt.sessions() as session:
        gateway = authenticate(session, token)
    service, bodies = IngestService(rt), [json.dumps(e).encode() for e in envelopes]
    for body in bodies[:20]:
        service.post(gateway, body)
    start = time.perf_counter()
    for body in bodies[20:]:
        service.post(gateway, body)
    return (len(bodies) - 20) / (time.perf_counter() - start)
