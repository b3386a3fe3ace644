"""One engine's run: fresh database, enrolment, seeding, ingest through HTTP, searches through HTTP."""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text

from homediag.api.app import create_app
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.synthetic import SyntheticPatient

from . import ceiling, data, env, stall
from .client import TestClient
from .latency import SearchRun, clinician_queries, search
from .pilot import Pilot, enrol
from .stall import StallRun
from .throughput import IngestRun, ingest


@dataclass(frozen=True)
class Sizes:
    patients: int
    days: int  # of readings per patient, two a day
    single: int  # envelopes sent one per request
    batched: int  # envelopes sent in lists of ``batch``
    batch: int
    searches: int  # timed searches per query kind
    warmup: int


FULL = Sizes(patients=100, days=250, single=2_000, batched=4_000, batch=100, searches=300, warmup=30)
QUICK = Sizes(patients=5, days=250, single=100, batched=500, batch=100, searches=200, warmup=20)


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


@dataclass
class EngineResult:
    engine: str
    version: str
    enrol_seconds: float
    seeded: int
    seed_seconds: float
    observations: int
    ingest: list[IngestRun]
    search: list[SearchRun]
    stall: StallRun
    ceilings: list[ceiling.Ceiling]
    profile: dict[str, Any] | None = None

    def ratios(self) -> dict[str, dict[str, float]]:
        """Each HTTP ingest rate over each same-run ceiling."""
        return {
            run.mode: {c.variant: round(run.observations_per_s / c.per_s, 3) for c in self.ceilings}
            for run in self.ingest
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "version": self.version,
            "enrol_seconds": round(self.enrol_seconds, 3),
            "seeded_observations": self.seeded,
            "seed_seconds": round(self.seed_seconds, 3),
            "observations_stored": self.observations,
            "ingest": [r.as_json() for r in self.ingest],
            "search": [r.as_json() for r in self.search],
            "stall": self.stall.as_json(),
            "ceiling": [c.as_json() for c in self.ceilings],
            "ingest_over_ceiling": self.ratios(),
            **({"profile": self.profile} if self.profile else {}),
        }


def server_version(rt: Runtime) -> str:
    with rt.engine.connect() as conn:
        if rt.engine.dialect.name == "postgresql":
            return str(conn.execute(text("show server_version")).scalar_one())
        return "SQLite " + str(conn.execute(text("select sqlite_version()")).scalar_one())


def run_engine(engine: str, sizes: Sizes, people: list[SyntheticPatient], profile: bool = False) -> EngineResult:
    """The newest envelopes go through POST /ingest, the older ones are seeded directly.

    The envelopes are dropped before the searches: the benchmark's own data should not sit in the
    heap that CPython's full garbage collections walk while searches are timed.
    """
    envelopes = data.cuff_envelopes(people, sizes.days)
    single = envelopes[: sizes.single]
    batched = envelopes[sizes.single : sizes.single + sizes.batched]
    seeded = envelopes[sizes.single + sizes.batched :]
    del envelopes
    with env.fresh_database(engine) as url, env.runtime(url) as rt, TestClient(create_app(rt)) as client:
        t0 = time.perf_counter()
        consent_from = (datetime.now(data.COPENHAGEN) - timedelta(days=sizes.days + 1)).date()
        pilot = enrol(client, rt, people, consent_from)
        enrol_seconds = time.perf_counter() - t0
        say(f"{engine}: {len(people)} patients enrolled with consent in {enrol_seconds:.1f} s")

        t0 = time.perf_counter()
        seeded_count = data.seed(rt, seeded)
        seed_seconds = time.perf_counter() - t0
        say(
            f"{engine}: seeded {seeded_count} Observations from {len(seeded)} envelopes directly (bypassing HTTP) "
            f"in {seed_seconds:.1f} s"
        )
        if engine == "postgresql":
            with rt.engine.begin() as conn:  # as autovacuum would soon after a bulk load
                conn.execute(text("ANALYZE"))

        gateway = pilot.auth("gateway")
        runs = []
        for chunk, batch in ((single, None), (batched, sizes.batch)):
            run = ingest(client, gateway, chunk, batch)
            say(
                f"{engine}: POST /ingest {run.mode}: {run.envelopes} envelopes, "
                f"{run.observations} Observations in {run.seconds:.1f} s"
            )
            runs.append(run)
        del single, batched, seeded
        gc.collect()

        with rt.sessions() as session:
            stored = session.execute(select(func.count()).select_from(m.Observation)).scalar_one()
        since = (datetime.now(data.COPENHAGEN) - timedelta(days=90)).date().isoformat()
        searches = run_searches(engine, client, pilot, since, sizes)

        # another seed draws other minutes: new readings, not duplicates of those already stored
        new_readings = data.cuff_envelopes(people[:2], sizes.batch, seed=8)[: sizes.batch]
        stalled = stall.measure(
            rt, gateway, pilot.auth("clinician"), clinician_queries(since)[1], pilot.patient_ids[0], new_readings
        )
        say(
            f"{engine}: probe p50 {stalled.idle.p50_ms:.1f} ms idle, max {stalled.during.max_ms:.0f} ms "
            f"during a {stalled.ingest_ms:.0f} ms POST /ingest of {stalled.envelopes}"
        )

        # after the searches: the ceiling's readings land in the searched window
        ceilings = []
        for seed, full in ((11, True), (12, False)):  # other seeds draw other minutes: new readings
            fresh = data.cuff_envelopes(people, -(-sizes.batched // len(people) // 2), seed=seed)[: sizes.batched]
            ceilings.append(ceiling.measure(rt, fresh, full_validation=full, batch=sizes.batch))
            last = ceilings[-1]
            say(f"{engine}: ceiling, one core in process, {last.variant}: {last.per_s:.0f} Observations/s")

        profiles: dict[str, Any] | None = None
        if profile:
            from .hotspots import profile_ingest, profile_search

            new_readings = data.cuff_envelopes(people[:2], sizes.batch, seed=7)[: sizes.batch]
            profiles = {"ingest": profile_ingest(rt, pilot, new_readings), "search": profile_search(rt, pilot, since)}
        return EngineResult(
            engine,
            server_version(rt),
            enrol_seconds,
            seeded_count,
            seed_seconds,
            stored,
            runs,
            searches,
            stalled,
            ceilings,
            profiles,
        )


def run_searches(engine: str, client: TestClient, pilot: Pilot, since: str, sizes: Sizes) -> list[SearchRun]:
    """Each clinician query; then the series query again with the start-up heap frozen (``gc.freeze``),
    out of the way of CPython's full collections."""
    clinician = pilot.auth("clinician")
    searches = []
    for query in clinician_queries(since):
        searches.append(search(client, clinician, query, pilot.patient_ids, sizes.searches, sizes.warmup))
        say(
            f"{engine}: {query.kind}: "
            f"p50 {searches[-1].latency.p50_ms:.1f} ms, p95 {searches[-1].latency.p95_ms:.1f} ms"
        )
    frozen = replace(clinician_queries(since)[0], kind="bp-90-days, gc.freeze()")
    gc.collect()
    gc.freeze()
    try:
        searches.append(search(client, clinician, frozen, pilot.patient_ids, sizes.searches, sizes.warmup))
    finally:
        gc.unfreeze()
    say(f"{engine}: {frozen.kind}: p50 {searches[-1].latency.p50_ms:.1f} ms, p95 {searches[-1].latency.p95_ms:.1f} ms")
    return searches
