"""Growth: ingest and the clinician's series search as the store grows (``--scale 1e5,1e6,1e7``).

The store is grown in steps to each size; at each it measures, through the in-process app: lists of 100
envelopes through ``POST /ingest`` (Observations/s) beside the same-run ceiling (``ceiling``), and the
``bp-90-days`` and ``bp-latest`` searches (p50/p95) of 20 enrolled patients with a year of readings.

Seeding bypasses HTTP: real rows are built for one day of each searched patient with the real builder and
repeated, shifted by whole days (new ids and dedup keys, the resource's time and identifier rewritten); the
filler that makes up the size belongs to 10,000 patient keys nobody searches, spread over three years, so the
table and its indexes grow as a region's would. PostgreSQL is seeded with COPY (psycopg), SQLite with
executemany; the seconds it took are reported.
"""

from __future__ import annotations

import gc
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from homediag import served
from homediag.api.app import create_app
from homediag.store import models as m
from homediag.store.database import upgrade
from homediag.store.partitions import ensure_observation_partitions
from homediag.synthetic import synthetic_patients

from . import ceiling, data, env
from .client import TestClient
from .latency import clinician_queries, round_trips, search
from .pilot import Pilot, enrol
from .throughput import ingest

SEARCHED = 20
FILLER_PATIENTS = 10_000
BACKFILLED = 120
"""The timed ingest's readings (and the ceiling's) are a back-fill from this many days ago, outside the 90-day
series: every run stores 3,000 envelopes of the searched patients, which in the last 25 days grew each one's
searched series by 150 readings a run (about 7,000 after 40 runs on a kept store, its count half the statement)."""
COLUMNS = [c.name for c in m.Observation.__table__.columns]


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _shifted(row: dict[str, Any], days: int, patient_key: str | None = None, salt: str = "") -> dict[str, Any]:
    """A copy of a real row moved ``days`` earlier (and to another patient key when given): new id and dedup."""
    dedup = hashlib.sha256(f"{row['dedup']}|{days}|{patient_key}|{salt}".encode()).hexdigest()
    delta = timedelta(days=days)
    start = row["effective_start"] - delta
    resource = dict(row["resource"])
    resource["id"] = dedup[:32]
    resource["effectiveDateTime"] = start.isoformat() + "Z"
    resource["identifier"] = [{**resource["identifier"][0], "value": dedup}]
    return {
        **row,
        "id": dedup[:32],
        "dedup": dedup,
        "patient_key": patient_key or row["patient_key"],
        "effective_start": start,
        "effective_end": row["effective_end"] - delta,
        "resource": resource,
    }


def _rows(templates: list[dict[str, Any]], count: int, *, start_day: int, filler: bool) -> Iterator[dict[str, Any]]:
    """``count`` rows from the templates; searched patients get consecutive earlier days, filler spreads out."""
    made, n = 0, 0
    while made < count:
        for template in templates:
            if made >= count:
                return
            if filler:
                key = hashlib.sha256(f"filler-{n % FILLER_PATIENTS}".encode()).hexdigest()[:64]
                yield _shifted(template, 1 + (n * 7919) % 1095, key, salt=f"f{start_day}-{n}")
            else:
                yield _shifted(template, start_day + n + 1, salt="s")
            made += 1
        n += 1


COPY_CHUNK = 500_000
"""PostgreSQL: rows per COPY transaction; a step of millions stays in bounded memory, and a failure late in it
(a full disk) keeps the chunks committed before it."""


def _copy_chunk(raw: Any, rows: list[dict[str, Any]]) -> None:
    """One transaction: ``rows`` by COPY, then their dedup claims."""
    cursor = raw.cursor()
    with cursor.copy(f"COPY observation ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            text, marks = served.written(row["resource"])  # the resource's text is also what a search serves
            values = {**row, "resource": text, "served_json": text, "served_marks": marks}
            copy.write_row([values.get(c) for c in COLUMNS])  # txn: NULL, as a committed row
    with cursor.copy("COPY observation_dedup (patient_key, dedup, observation_id, effective_start) FROM STDIN") as copy:
        for row in rows:
            copy.write_row((row["patient_key"], row["dedup"], row["id"], row["effective_start"]))
    raw.commit()


def _seed(rt: Any, rows: Iterator[dict[str, Any]]) -> int:
    """Write ``rows`` (and their dedup claims): COPY on PostgreSQL, executemany on SQLite."""
    count = 0
    if rt.engine.dialect.name == "postgresql":
        raw = rt.engine.raw_connection()
        try:
            while part := list(islice(rows, COPY_CHUNK)):
                _copy_chunk(raw, part)
                count += len(part)
        finally:
            raw.close()
        return count
    chunk: list[dict[str, Any]] = []
    table, claims_table = m.Observation.__table__, m.ObservationDedup.__table__

    def flush() -> None:
        with rt.engine.begin() as conn:
            conn.execute(insert(table), chunk)
            conn.execute(
                insert(claims_table),
                [
                    {
                        "patient_key": r["patient_key"],
                        "dedup": r["dedup"],
                        "observation_id": r["id"],
                        "effective_start": r["effective_start"],
                    }
                    for r in chunk
                ],
            )

    for row in rows:
        chunk.append(row)
        count += 1
        row["served_marks"] = served.written(row["resource"])[1]  # the text once, as the resource (``stored_once``)
        row["served_json"] = None
        if len(chunk) >= 10_000:
            flush()
            chunk = []
    if chunk:
        flush()
    return count


@contextmanager
def _store(engine: str, keep: Path | None, reuse: Path | None) -> Iterator[tuple[str, str | None, Pilot | None]]:
    """The database (url, keys, pilot): fresh and dropped after; fresh and kept (its state written to ``keep``);
    or a kept one read from ``reuse``, already enrolled and seeded, to measure again with other code."""
    if reuse is not None:
        state = json.loads(reuse.read_text())
        yield state["url"], state["keys_json"], Pilot(state["tokens"], state["patient_ids"])
    elif keep is not None and engine == "sqlite":  # the database file beside the state file, kept
        kept = keep.with_suffix(".sqlite3")
        if kept.exists():
            raise SystemExit(f"--keep-store: {kept} exists; remove it or name another state file")
        url = f"sqlite:///{kept.resolve()}"
        upgrade(url)
        yield url, None, None
    elif keep is not None:
        with env.kept_postgresql_database() as url:
            yield url, None, None
    else:
        with env.fresh_database(engine) as url:
            yield url, None, None


def _as_autovacuum_would(engine: Any) -> None:
    """What autovacuum (on by default) does soon after a bulk load: statistics, and on PostgreSQL a ``VACUUM`` (since
    PostgreSQL 13 its insert threshold also vacuums insert-only tables), which marks pages all-visible so that a
    count is answered from the index alone. This machine's PostgreSQL runs with ``autovacuum = off`` (its CI
    configuration, ``conf.d/90-ci.conf``), so without this a store seeded by COPY has no page marked and every
    count reads each match's heap page: a state a deployment does not stay in."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def _next_run(state: Path) -> int:
    """The number of this run on a kept store (counted in its state file): runs on one store take distinct
    seconds for their readings, which two runs' random minutes would otherwise make duplicates of each other."""
    kept = json.loads(state.read_text())
    kept["runs"] = int(kept.get("runs", 0)) + 1
    state.write_text(json.dumps(kept))
    return int(kept["runs"])


def run(engine: str, sizes: list[int], keep: Path | None = None, reuse: Path | None = None) -> dict[str, Any]:
    people = synthetic_patients(SEARCHED, seed=4242)
    steps: list[dict[str, Any]] = []
    with (
        _store(engine, keep, reuse) as (url, keys_json, kept_pilot),
        env.runtime(url, keys_json) as rt,
        TestClient(create_app(rt)) as client,
    ):
        if kept_pilot is None:
            consent_from = (datetime.now(data.COPENHAGEN) - timedelta(days=4000)).date()
            pilot = enrol(client, rt, people, consent_from)
            if engine == "postgresql":
                with rt.engine.begin() as conn:  # three years of months, as a deployment that has run that long
                    ensure_observation_partitions(conn, back=40)
        else:
            pilot = kept_pilot
        if keep is not None:
            keep.touch(mode=0o600)
            keep.write_text(
                json.dumps(
                    {
                        "url": url,
                        "keys_json": rt.keys.to_json(),
                        "tokens": pilot.tokens,
                        "patient_ids": pilot.patient_ids,
                    }
                )
            )
            say(f"kept store {url}: state in {keep}; drop (or delete) the database by hand when done")
        with rt.sessions() as session:
            ids = {pkey: pid for pkey, pid in session.execute(select(m.Patient.patient_key, m.Patient.id))}
        # one day of real readings per searched patient (the newest day), the templates of everything seeded
        today = data.cuff_envelopes(people, 1, seed=99)
        templates = [row for raw in today for row in data.observation_rows(rt, raw, ids)]
        searched_rows = SEARCHED * 365 * 2 * 2  # a year of two envelopes a day (BP and pulse each)
        seeded_at_start = 0 if kept_pilot is None else 1
        ingest_seed = 500 if kept_pilot is None else 10_000 + int(time.time()) % 1_000_000
        second = 0 if reuse is None else _next_run(reuse) % 59 + 1  # readings not yet stored in the kept store
        for size in sizes:
            with rt.sessions() as session:
                stored = session.execute(select(func.count()).select_from(m.Observation)).scalar_one()
            todo = max(0, size - stored)
            t0 = time.perf_counter()
            if seeded_at_start == 0:
                mine = min(todo, searched_rows)
                seeded = _seed(rt, _rows(templates, mine, start_day=0, filler=False))
                seeded += _seed(rt, _rows(templates, todo - mine, start_day=len(steps), filler=True))
                seeded_at_start = 1
            else:
                seeded = _seed(rt, _rows(templates, todo, start_day=len(steps) + 1, filler=True))
            seed_seconds = time.perf_counter() - t0
            t1 = time.perf_counter()
            _as_autovacuum_would(rt.engine)
            say(
                f"{engine} scale {size:,}: seeded {seeded:,} rows in {seed_seconds:.0f} s;"
                f" vacuumed and analyzed in {time.perf_counter() - t1:.0f} s"
            )

            since = (datetime.now(data.COPENHAGEN) - timedelta(days=90)).date().isoformat()
            clinician = pilot.auth("clinician")
            searches = {
                q.kind: search(client, clinician, q, pilot.patient_ids, 200, 20).as_json()
                for q in clinician_queries(since)
            }
            # again with the heap frozen out of CPython's full collections, as each served worker freezes its
            # start-up heap (homediag.server): those passes over this process's heap set the p95 above
            gc.collect()
            gc.freeze()
            try:
                for q in clinician_queries(since):
                    frozen = replace(q, kind=f"{q.kind}, gc.freeze()")
                    searches[frozen.kind] = search(client, clinician, frozen, pilot.patient_ids, 200, 20).as_json()
                # the floor: the same in-process app's round trip of a route that does nothing (no token, no database)
                floor = round_trips(client, "/health/live", 200, 20).as_json()
            finally:
                gc.unfreeze()
            # new readings (other minutes than the seeded ones) in lists of 100, then the same-run ceiling
            fresh, for_full, for_rules = (
                data.cuff_envelopes(people, 25, seed=ingest_seed + n, second=second, first_day=BACKFILLED)[:1000]
                for n in range(3)
            )
            ingest_seed += 3
            run_http = ingest(client, pilot.auth("gateway"), fresh, 100)
            full = ceiling.measure(rt, for_full, full_validation=True)
            rules = ceiling.measure(rt, for_rules, full_validation=False)
            step = {
                "size": size,
                "seeded": seeded,
                "seed_seconds": round(seed_seconds, 1),
                "search": searches,
                "floor_health_live_frozen_heap": floor,
                "ingest_lists_of_100_observations_per_s": round(run_http.observations_per_s, 1),
                "ceiling": [full.as_json(), rules.as_json()],
                "ingest_over_ceiling": {
                    full.variant: round(run_http.observations_per_s / full.per_s, 3),
                    rules.variant: round(run_http.observations_per_s / rules.per_s, 3),
                },
            }
            steps.append(step)
            series = searches["bp-90-days"]["latency"]
            step["series_over_latest_p95"] = {
                heap: round(
                    searches[f"bp-90-days{heap}"]["latency"]["p95_ms"]
                    / searches[f"bp-latest{heap}"]["latency"]["p95_ms"],
                    2,
                )
                for heap in ("", ", gc.freeze()")
            }
            step["series_over_floor_p95_frozen_heap"] = round(
                searches["bp-90-days, gc.freeze()"]["latency"]["p95_ms"] / floor["latency"]["p95_ms"], 2
            )
            say(
                f"{engine} scale {size:,}: bp-90-days p95 {series['p95_ms']} ms, bp-latest p95 "
                f"{searches['bp-latest']['latency']['p95_ms']} ms (frozen heap: "
                f"{searches['bp-90-days, gc.freeze()']['latency']['p95_ms']} ms, "
                f"{searches['bp-latest, gc.freeze()']['latency']['p95_ms']} ms; "
                f"floor {floor['latency']['p95_ms']} ms); "
                f"ingest {run_http.observations_per_s:.0f} obs/s "
                f"(ceiling {full.per_s:.0f} full / {rules.per_s:.0f} rules)"
            )
    first = steps[0]
    for step in steps:
        step["growth_vs_first"] = {
            "ingest": round(
                step["ingest_lists_of_100_observations_per_s"] / first["ingest_lists_of_100_observations_per_s"], 3
            ),
            "series_p95": round(
                step["search"]["bp-90-days"]["latency"]["p95_ms"] / first["search"]["bp-90-days"]["latency"]["p95_ms"],
                3,
            ),
        }
    return {"engine": engine, "steps": steps}
