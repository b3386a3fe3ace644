"""``python -m bench.web``: the web app's worklist and patient page, server time of the whole page.

500 patients with 14 days of twice-daily cuff readings (seeded directly, as ``python -m bench`` seeds), one of
them with 90 days of six measurement types (blood pressure systolic/diastolic and pulse from a cuff twice a
day, SpO2 from a pulse oximeter, temperature, weight and glucose once a day, all real BLE payloads through
their adapters), a clinician with all of them in its team, signed in with a one-time link. Times
``GET /app/worklist`` (access read, monitoring's triage, identity from the vault, template) and
``GET /app/patients/{id}?days=90`` (readings, triage, server-side SVG charts, table, calendar, uploads)
through the ASGI app in process (no network): the first view of each (nothing remembered yet), then
``--repeats`` views of each, then five worklist views each after a new reading for 50 patients, then the first
view of each again with every process memory emptied (``forget``: what a freshly started worker has, with the
store as it is), three times, then the morning: three times a new cuff reading for every patient, sent through
``POST /ingest`` as a gateway sends it (the patient page's patient in the last list of 100), then a view of each
page right after (the page's charts drawn ahead, ``web.predraw``, beside the views: the page waits for them); then
three more such mornings with the views taken once the drawer's queue is empty (a real morning's readings arrive
hours before the nurse looks; the time it took to settle is reported); then the next mornings: the worklist's first view
a day on, two, three (past midnight, the oldest readings out of the 14 days), then three more days on with every
process memory emptied first. ``--profile worklist|patient`` prints a cProfile
of three views of one page; ``--profile forgotten|morning`` of the worklist's first view after emptying the
memories / after new readings for all; ``--profile forgotten-patient|morning-patient`` of the patient page's after
emptying them / after new readings for all; ``--profile next-day`` of the worklist's first view the fifth day on;
``--profile drawer`` of the drawer's work after the six mornings' ingests (``web.predraw.draw_ahead``).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import pstats
import random
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import fastapi.routing
from fastapi.testclient import TestClient

from homediag.adapters.devices import DeviceTime, glucose, pulse_oximeter, thermometer, weight_scale
from homediag.api.app import create_app
from homediag.synthetic import SyntheticPatient, cuff_payload, envelope, synthetic_patients
from homediag.web.sessions import issue_signin_link

from . import data, env
from .pilot import enrol
from .stats import Latency

_PLAIN = fastapi.routing.run_in_threadpool  # the endpoints' worker threads, unprofiled


def other_envelopes(person: SyntheticPatient, days: int, seed: int = 2027) -> list[dict[str, Any]]:
    """Once a day for ``days`` days up to yesterday: SpO2 and pulse (0x2A5E), temperature (0x2A1C), weight
    (0x2A9D), glucose (0x2A18), each a real payload from its own (synthetic) device."""
    rng = random.Random(seed)
    today = datetime.now(data.COPENHAGEN).replace(second=0, microsecond=0)
    out = []
    for day in range(1, days + 1):
        taken = (today - timedelta(days=day)).replace(hour=8, minute=rng.randint(0, 50))
        stamp = DeviceTime(taken.year, taken.month, taken.day, taken.hour, taken.minute, 0)
        payloads = [
            (
                "ble-plx-spot",
                "PLX-1",
                pulse_oximeter.encode_spot(rng.randint(91, 99), rng.randint(55, 95), timestamp=stamp),
            ),
            ("ble-thermometer", "TH-1", thermometer.encode(Decimal(rng.randint(359, 381)) / 10, timestamp=stamp)),
            ("ble-weight-scale", "WS-1", weight_scale.encode(Decimal(rng.randint(8000, 8300)) / 100, timestamp=stamp)),
            (
                "ble-glucose",
                "GL-1",
                glucose.encode(
                    Decimal(rng.randint(40, 110)) * Decimal("1E-4"),
                    mol_per_l=True,
                    base_time=stamp,
                    sequence_number=day,
                ),
            ),
        ]
        for adapter, model, payload in payloads:
            raw = envelope(person, payload, taken + timedelta(minutes=2))
            raw["adapter"] = adapter
            raw["device"] = {**raw["device"], "model": model, "serial": f"{person.cuff_serial}-{model}"}
            out.append(raw)
    return out


def run(engine: str, patients: int, days: int, repeats: int, profile: str | None = None) -> dict[str, object]:
    people = synthetic_patients(patients)
    with env.fresh_database(engine) as url, env.runtime(url) as rt, TestClient(create_app(rt)) as client:
        rt.settings.web_secure_cookies = False
        consent_from = (datetime.now(data.COPENHAGEN) - timedelta(days=91)).date()
        pilot = enrol(client, rt, people, consent_from)
        seeded = data.seed(
            rt,
            data.cuff_envelopes(people[1:], days)
            + data.cuff_envelopes(people[:1], 90)
            + other_envelopes(people[0], 90),
        )
        from sqlalchemy import select

        from homediag.store import models as m

        with rt.sessions() as session:
            clinician_id = session.execute(select(m.User.id).where(m.User.role == "clinician")).scalar_one()
        client.get(issue_signin_link(rt, clinician_id), follow_redirects=False)
        page = f"/app/patients/{pilot.patient_ids[0]}?days=90"
        _freeze_as_served()
        first_worklist = _timed_get(client, "/app/worklist")  # the first view: nothing remembered yet
        first_patient = _timed_get(client, page)
        if profile in ("worklist", "patient"):
            profiler = _profile_endpoints()
            for _ in range(3):
                client.get("/app/worklist" if profile == "worklist" else page)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        worklist, patient = [], []
        for _ in range(repeats):
            worklist.append(_timed_get(client, "/app/worklist"))
            patient.append(_timed_get(client, page))
        # a morning's arrivals: a new cuff reading for 50 of the patients between two views, five times
        after_new: list[float] = []
        rng = random.Random(7)
        for round_ in range(5):
            taken = datetime.now(data.COPENHAGEN).replace(second=0, microsecond=0) - timedelta(minutes=5 + round_)
            chosen = people[1 + 50 * round_ : 51 + 50 * round_]
            data.seed(
                rt,
                [
                    envelope(p, cuff_payload(rng, taken.replace(tzinfo=None)), taken + timedelta(minutes=1))
                    for p in chosen
                ],
            )
            after_new.append(_timed_get(client, "/app/worklist"))
        # a freshly started worker: every process memory emptied, the store as it is
        forgotten_worklist, forgotten_patient = [], []
        for n in range(3):
            forget(rt)
            profiler = _profile_endpoints() if profile == "forgotten" and n == 1 else None
            forgotten_worklist.append(_timed_get(client, "/app/worklist"))
            _print_profile(profiler)
            profiler = _profile_endpoints() if profile == "forgotten-patient" and n == 1 else None
            forgotten_patient.append(_timed_get(client, page))
            _print_profile(profiler)
        # the morning: every patient got a new reading overnight, then a view of each page; the patient page was
        # shown before, so its charts are drawn ahead after ingest (``web.predraw``) beside the worklist's view.
        # Then three more mornings where the drawer's queue is empty before the views (readings arrive hours before
        # the nurse looks): the time to settle after ingest is reported, the views are taken after it
        morning_worklist, morning_patient, morning_ingest = [], [], []  # ingest: its 5 lists of 100, in all
        settled_worklist, settled_patient, settled_wait = [], [], []
        morning_draws: list[int] = []  # charts matplotlib drew during each morning page view
        pending: list[int] = []  # the drawer's jobs not done when each morning page view began
        drawer = _drawer()
        drawer_profiler = _profile_drawer() if profile == "drawer" else None
        for round_ in range(6):
            # dated after every earlier reading (the 50 patients' above are 5 to 9 minutes old)
            taken = datetime.now(data.COPENHAGEN).replace(second=0, microsecond=0) - timedelta(minutes=3 - round_ / 2)
            settle = round_ >= 3
            # the page's patient in the last list: its drawing ahead starts as ingest ends, beside the views
            order = people if settle else people[1:] + people[:1]
            t0 = time.perf_counter()
            _ingest(
                client,
                pilot.auth("gateway"),
                [
                    envelope(p, cuff_payload(rng, taken.replace(tzinfo=None)), taken + timedelta(minutes=1))
                    for p in order
                ],
            )
            if not settle:
                morning_ingest.append(time.perf_counter() - t0)
            elif drawer is not None:
                t1 = time.perf_counter()
                drawer.settle(60)
                settled_wait.append(time.perf_counter() - t1)
            profiler = _profile_endpoints() if profile == "morning" and round_ == 1 else None
            (settled_worklist if settle else morning_worklist).append(_timed_get(client, "/app/worklist"))
            _print_profile(profiler)
            profiler = _profile_endpoints() if profile == "morning-patient" and round_ in (1, 4) else None
            pending.append(drawer._jobs.unfinished_tasks if drawer is not None else 0)
            with _counted_draws() as draws:
                (settled_patient if settle else morning_patient).append(_timed_get(client, page))
            morning_draws.append(draws[0])
            _print_profile(profiler)
        if drawer_profiler is not None and drawer is not None:
            drawer.settle(60)
            pstats.Stats(drawer_profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(60)
            pstats.Stats(drawer_profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
        # the next mornings: a day on (past midnight, the oldest readings out of the 14 days), no new reading yet:
        # the first worklist view of each day, three days with the process memory, three with it emptied
        real_clock = rt.clock
        next_day, next_day_forgotten = [], []
        for n in range(6):
            rt.clock = lambda on=timedelta(days=1 + n): real_clock() + on
            if n >= 3:
                forget(rt)
            profiler = _profile_endpoints() if profile == "next-day" and n == 4 else None
            (next_day if n < 3 else next_day_forgotten).append(_timed_get(client, "/app/worklist"))
            _print_profile(profiler)
        rt.clock = real_clock
        memory = _memory()
        return {
            "engine": engine,
            "patients": patients,
            "observations": seeded,
            "worklist_first_view_ms": round(first_worklist * 1000, 1),
            "patient_page_first_view_ms": round(first_patient * 1000, 1),
            "worklist_page": Latency.of(worklist).as_json(),
            "worklist_after_50_new_readings": Latency.of(after_new).as_json(),
            "patient_page_90_days": Latency.of(patient).as_json(),
            "worklist_memories_emptied_ms": [round(t * 1000, 1) for t in forgotten_worklist],
            "patient_page_memories_emptied_ms": [round(t * 1000, 1) for t in forgotten_patient],
            "worklist_morning_all_new_ms": [round(t * 1000, 1) for t in morning_worklist],
            "patient_page_morning_ms": [round(t * 1000, 1) for t in morning_patient],
            "morning_ingest_500_ms": [round(t * 1000, 1) for t in morning_ingest],
            "predraw": drawer is not None,
            "worklist_morning_drawer_settled_ms": [round(t * 1000, 1) for t in settled_worklist],
            "patient_page_morning_drawer_settled_ms": [round(t * 1000, 1) for t in settled_patient],
            "drawer_settling_after_ingest_ms": [round(t * 1000, 1) for t in settled_wait],
            "morning_page_charts_drawn": morning_draws,
            "drawer_jobs_pending_at_morning_page": pending,
            "worklist_next_day_ms": [round(t * 1000, 1) for t in next_day],
            "worklist_next_day_memories_emptied_ms": [round(t * 1000, 1) for t in next_day_forgotten],
            **memory,
        }


def _drawer() -> Any:
    """The process's chart drawer (``web.predraw``), None on a build without one (the bench runs on older
    commits too)."""
    try:
        from homediag.web import predraw
    except ImportError:
        return None
    return predraw.DRAWER


@contextlib.contextmanager
def _counted_draws() -> Iterator[list[int]]:
    """How many charts matplotlib draws (in any thread or drawing process) inside the block: ``[n]`` when it ends."""
    from homediag.web import charts

    count = [0]
    name = "_drawing" if hasattr(charts, "_drawing") else "_draw"  # started in a drawing process, or drawn here
    real = getattr(charts, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return real(*args, **kwargs)

    setattr(charts, name, counted)
    try:
        yield count
    finally:
        setattr(charts, name, real)


def _memory() -> dict[str, Any]:
    """RSS and PSS (MB, ``/proc/<pid>/smaps_rollup``) of this process (the server's) and of its chart drawing
    processes (``web.chart_process``, none on builds without them)."""

    def rss_pss(pid: int) -> list[float]:
        fields = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("Rss", "Pss"):
                    fields[name] = round(int(rest.split()[0]) / 1024, 1)
        return [fields["Rss"], fields["Pss"]]

    try:
        from homediag.web import chart_process
    except ImportError:
        pids: list[int] = []
    else:
        pids = chart_process.POOL.pids()
    import os

    return {"server_rss_pss_mb": rss_pss(os.getpid()), "chart_processes_rss_pss_mb": [rss_pss(p) for p in pids]}


def _freeze_as_served() -> None:
    """The heap frozen as ``homediag serve``'s workers freeze it (``server.py``): the start-up heap, then again
    whenever more modules were imported (``homediag.heap``, a watcher thread; commits before it freeze once). What
    the pages remember is not frozen."""
    try:
        from homediag import heap
    except ImportError:
        gc.collect()
        gc.freeze()
        return
    heap.freeze_startup()
    heap.keep_frozen()


def _ingest(client: Any, gateway: dict[str, str], envelopes: list[dict[str, Any]]) -> None:
    """``envelopes`` through ``POST /ingest`` (lists of 100), as a gateway sends them: what ingest keeps of each new
    reading is kept as in service (the other cases seed directly, which keeps nothing)."""
    for n in range(0, len(envelopes), 100):
        answer = client.post("/ingest", json=envelopes[n : n + 100], headers=gateway)
        assert answer.status_code in (200, 201), (answer.status_code, answer.text[:300])
        assert all(r["outcome"] == "created" for r in answer.json()["results"]), answer.text[:300]


def _timed_get(client: Any, path: str) -> float:
    """Seconds for one GET of ``path``, which must answer 200."""
    t0 = time.perf_counter()
    answer = client.get(path)
    elapsed = time.perf_counter() - t0
    assert answer.status_code == 200, (path, answer.status_code)
    return elapsed


def forget(rt: Any) -> None:
    """Empty every process memory the pages use (what a freshly started worker has), the store left as it is."""
    from homediag.access import readings, worklist
    from homediag.monitoring import store
    from homediag.web import charts, patient_view, worklist_view

    if hasattr(store, "forget"):  # values, triages, decoded kept triages (the bench runs on older commits too)
        store.forget()
    for memory in (
        store._VALUES,
        store._TRIAGED,
        readings._SHAPES,
        readings._IDENTIFIED,
        patient_view._ROWS,
        worklist_view._CELLS,
        charts._DRAWN,
        rt.consent_cache,
    ):
        memory.clear()
    worklist._MEMO.forget(rt.engine)
    if hasattr(patient_view, "_POINTS"):  # the charts' points (h12drawer)
        patient_view._POINTS.clear()
    if hasattr(charts, "_PREPARED"):  # the kept figures (h12chart): a new worker makes them again
        charts._PREPARED.clear()
    if hasattr(charts, "chart_process"):  # kept in the drawing processes (h12chartproc): dropped before their next
        charts.chart_process.POOL.forget()


def _print_profile(profiler: cProfile.Profile | None) -> None:
    if profiler is None:
        return
    fastapi.routing.run_in_threadpool = _PLAIN  # type: ignore[assignment]
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
    pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)


def _profile_drawer() -> cProfile.Profile | None:
    """A profiler of the drawer's work (``predraw.draw_ahead``, in its thread) over the mornings: its thread CPU
    per job is printed too."""
    try:
        from homediag.web import predraw
    except ImportError:
        return None
    profiler = cProfile.Profile(time.thread_time)  # CPU: the drawer waits for served views in between
    real = predraw.draw_ahead

    def profiled(*args: Any, **kwargs: Any) -> Any:
        cpu = time.thread_time()
        profiler.enable()
        try:
            return real(*args, **kwargs)
        finally:
            profiler.disable()
            print(f"drawer job: {(time.thread_time() - cpu) * 1000:.1f} ms thread CPU (profiled)", file=sys.stderr)

    predraw.draw_ahead = profiled  # type: ignore[assignment]
    return profiler


def _profile_endpoints() -> cProfile.Profile:
    """A profiler of every sync endpoint and dependency from now on: they run in worker threads, which a profiler
    enabled in this thread would not see."""
    profiler = cProfile.Profile()
    plain = _PLAIN

    async def profiled(func: Any, *args: Any, **kwargs: Any) -> Any:
        def inner() -> Any:
            profiler.enable()
            try:
                return func(*args, **kwargs)
            finally:
                profiler.disable()

        return await plain(inner)

    fastapi.routing.run_in_threadpool = profiled  # type: ignore[assignment]
    return profiler


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--profile",
        choices=(
            "worklist",
            "patient",
            "forgotten",
            "forgotten-patient",
            "morning",
            "morning-patient",
            "next-day",
            "drawer",
        ),
        help="print a cProfile to stderr",
    )
    args = parser.parse_args(argv)
    for engine in ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]:
        print(json.dumps(run(engine, args.patients, args.days, args.repeats, args.profile)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
