"""Where the time goes: cProfile of the work behind one 100-envelope POST /ingest and one search.

cProfile sees only the thread it runs in, and both endpoints do their work in the server's thread
pool. So the work is profiled by calling, on this thread, what the endpoints call: for POST /ingest
``fhirjson.loads`` of the body, ``IngestService.ingest`` and the rendering of the response; for the
search ``authenticate``, ``parse_observation_query``, ``AccessService.search_observations`` and the
rendering of the Bundle. HTTP and routing are left out; compare with the HTTP latencies.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from homediag.access import AccessService
from homediag.api.responses import FhirResponse, JsonResponse
from homediag.fhir_profiles import fhirjson
from homediag.ingest import IngestService
from homediag.runtime import Runtime
from homediag.search_params import parse_observation_query
from homediag.users import authenticate

from .latency import clinician_queries
from .pilot import Pilot

# (label, path fragment, function name): steps whose cumulative time is reported; they nest and overlap
Steps = tuple[tuple[str, str, str], ...]
INGEST_STEPS: Steps = (
    ("IngestService.ingest_one, all of it", "homediag/ingest/envelopes.py", "ingest_one"),
    ("new_upload (seal)", "homediag/ingest/uploadlog.py", "new_upload"),
    ("adapter decode", "adapters/devices/blood_pressure.py", "decode"),
    ("fhir_profiles.build", "fhir_profiles/builder.py", "build"),
    ("check_rules", "fhir_profiles/validation.py", "check_rules"),
    ("Pipeline.store (device upsert, insert)", "homediag/ingest/pipeline.py", "store"),
    ("audit.append", "homediag/audit.py", "append"),
    ("Session.execute (incl. autoflush)", "sqlalchemy/orm/session.py", "execute"),
    ("Session._flush (ORM unit of work)", "sqlalchemy/orm/session.py", "_flush"),
    ("SQL compilation (cache misses)", "sqlalchemy/sql/elements.py", "_compiler"),
    ("Insert.values (statement building)", "sqlalchemy/sql/dml.py", "values"),
    ("Session.commit", "sqlalchemy/orm/session.py", "commit"),
    ("fhirjson.dumps (JSON columns, response)", "fhir_profiles/fhirjson.py", "dumps"),
)
SEARCH_STEPS: Steps = (
    ("AccessService.search_observations", "homediag/access/observations.py", "search_observations"),
    ("permitted_windows (consents)", "homediag/access/decisions.py", "permitted_windows"),
    ("Session.execute", "sqlalchemy/orm/session.py", "execute"),
    ("SQL compilation (cache misses)", "sqlalchemy/sql/elements.py", "_compiler"),
    ("fhirjson.loads (resource column to dict)", "fhir_profiles/fhirjson.py", "loads"),
    ("audit.append", "homediag/audit.py", "append"),
    ("fhirjson.dumps (render the Bundle)", "fhir_profiles/fhirjson.py", "dumps"),
)
BUCKETS = (
    ("sqlite3 driver", ("sqlite3",)),
    ("psycopg driver", ("psycopg",)),
    ("SQLAlchemy", ("sqlalchemy",)),
    ("simplejson", ("simplejson",)),
    ("pydantic", ("pydantic",)),
    ("crypto/hash", ("cryptography", "hmac", "hashlib", "_hashlib", "_sha", "os.urandom")),
    ("homediag", ("homediag", "fhir_profiles", "adapters/devices", "/consent/")),
    ("web stack", ("starlette", "fastapi", "httpx", "anyio", "h11")),
    ("asyncio", ("asyncio",)),
)


def _bucket(location: str) -> str:
    for name, needles in BUCKETS:
        if any(n in location for n in needles):
            return name
    return "other"


def summarise(profiler: cProfile.Profile, wall: float, title: str, steps_of: Steps, per: int = 1) -> dict[str, Any]:
    """Self time per package, cumulative time of the named steps, the top functions by self time; printed and returned.

    Times are divided by ``per`` (the number of profiled repetitions); ``wall`` is already per repetition.
    """
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    raw = {k: (cc, nc // per, tt / per, ct / per, callers) for k, (cc, nc, tt, ct, callers) in stats.items()}
    buckets: dict[str, float] = {}
    for (path, _line, func), (_cc, _nc, tt, _ct, _callers) in raw.items():
        name = _bucket(f"{path}:{func}")
        buckets[name] = buckets.get(name, 0.0) + tt
    profiled = sum(buckets.values())
    steps = {}
    for label, fragment, func in steps_of:
        ct = sum(v[3] for (path, _l, f), v in raw.items() if f == func and fragment in path.replace("\\", "/"))
        if ct:
            steps[label] = ct
    top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:12]

    out = sys.stdout
    print(
        f"\n{title}: wall {wall * 1000:.1f} ms, profiled {profiled * 1000:.1f} ms (cProfile inflates small calls)",
        file=out,
    )
    print("  self time by package:", file=out)
    for name, tt in sorted(buckets.items(), key=lambda kv: kv[1], reverse=True):
        print(f"    {name:16} {tt * 1000:8.1f} ms  {100 * tt / profiled:5.1f}%", file=out)
    print("  cumulative time of steps:", file=out)
    for label, ct in steps.items():
        print(f"    {label:42} {ct * 1000:8.1f} ms", file=out)
    print("  top functions by self time:", file=out)
    here = f"{Path.cwd()}/"
    for (path, line, func), (_cc, nc, tt, _ct, _c) in top:
        where = f"{path.split('site-packages/')[-1].removeprefix(here)}:{line}" if path != "~" else "builtin"
        print(f"    {tt * 1000:7.1f} ms {nc:7d} calls  {func}  ({where})", file=out)
    return {
        "title": title,
        "wall_ms": round(wall * 1000, 1),
        "profiled_ms": round(profiled * 1000, 1),
        "self_ms_by_package": {k: round(v * 1000, 1) for k, v in buckets.items()},
        "steps_cumulative_ms": {k: round(v * 1000, 1) for k, v in steps.items()},
    }


def profile_ingest(rt: Runtime, pilot: Pilot, envelopes: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps(envelopes).encode()
    with rt.sessions() as session:
        gateway = authenticate(session, pilot.tokens["gateway"])
    assert gateway is not None
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    results = IngestService(rt).ingest(gateway, fhirjson.loads(body))
    JsonResponse({"results": [r.as_json() for r in results]})
    profiler.disable()
    wall = time.perf_counter() - t0
    outcomes = sorted({r.outcome for r in results})
    return summarise(
        profiler,
        wall,
        f"cProfile, the work of one POST /ingest of {len(envelopes)} envelopes without HTTP "
        f"({rt.engine.dialect.name}; outcomes {outcomes})",
        INGEST_STEPS,
    )


def profile_search(rt: Runtime, pilot: Pilot, since: str, repeat: int = 20) -> dict[str, Any]:
    query = clinician_queries(since)[0]
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    for n in range(repeat):
        with rt.sessions() as session:
            principal = authenticate(session, pilot.tokens["clinician"])
        assert principal is not None
        items = list(query.params(pilot.patient_ids[n % len(pilot.patient_ids)]).items())
        q = parse_observation_query(items, rt.local_zone, rt.settings.default_page_size, rt.settings.max_page_size)
        bundle = AccessService(rt).search_observations(principal, q, "http://testserver/fhir", items)
        FhirResponse(bundle)
    profiler.disable()
    wall = (time.perf_counter() - t0) / repeat
    return summarise(
        profiler,
        wall,
        f"cProfile, {query.kind} search path without HTTP ({rt.engine.dialect.name}; per search, mean of {repeat})",
        SEARCH_STEPS,
        per=repeat,
    )
