"""``python -m bench``: ingest throughput and search latency on SQLite and/or PostgreSQL;
``python -m bench evaluation``: the evaluation export and metrics at scale (``bench/evaluation.py``)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from homediag.synthetic import synthetic_patients

from . import data, machine, report, targets
from .latency import clinician_queries
from .scenario import FULL, QUICK, EngineResult, run_engine


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="a small smoke size (about 5,000 Observations)")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the results as JSON to this file (default: bench/results/bench-<UTC time>-<commit>.json)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile one 100-envelope ingest and the search path"
    )
    parser.add_argument(
        "--served",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve with `homediag serve --workers N` and drive it from concurrent clients over loopback: the served"
        " targets (default; --no-served skips it)",
    )
    parser.add_argument("--no-main", action="store_true", help="skip the in-process run (only --served / --scale)")
    parser.add_argument(
        "--served-lists",
        type=int,
        help="--served: lists of 100 sent alone and again while four clients search (default 5 with --quick, else 20)",
    )
    parser.add_argument(
        "--served-gateways",
        type=int,
        default=2,
        help="--served: after the lists from one gateway, as many lists from each of this many gateways posting at"
        " once (default 2; 1: none)",
    )
    parser.add_argument(
        "--served-apart",
        action="store_true",
        help="--served: also the lists alone and while four clients search with the gateway and the clinicians on a"
        " server each (`homediag serve --workers 1` twice over the same store: the README's deployment for gateways"
        " on a network of their own)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes for --served (default 2: one per core of this machine)"
    )
    parser.add_argument(
        "--scale",
        type=lambda v: [int(float(x)) for x in v.split(",")],
        help="store sizes to grow through, e.g. 1e5,1e6,1e7: ingest and series search at each (PostgreSQL: COPY)",
    )
    parser.add_argument(
        "--keep-store",
        type=Path,
        help="--scale: keep the grown store (a PostgreSQL database, or the SQLite file beside this file)"
        " and write its state (url, keys, tokens) to this file",
    )
    parser.add_argument(
        "--reuse-store",
        type=Path,
        help="--scale: measure again on a database kept by --keep-store (its state file), without seeding it again",
    )
    return parser.parse_args(argv)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    sys.exit(128 + signum)  # unwinds, so the benchmark database is still dropped


def main(argv: list[str]) -> int:
    if argv[:1] == ["evaluation"]:  # python -m bench evaluation: the evaluation export and metrics at scale
        from . import evaluation

        return evaluation.main(argv[1:])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    sizes = QUICK if args.quick else FULL
    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    people = synthetic_patients(sizes.patients)
    envelopes = sizes.patients * sizes.days * len(data.HOURS)
    if not args.no_main:  # what the in-process run does (the served and scale runs say their own)
        print(
            f"homediag bench ({'quick' if args.quick else 'full'}): "
            f"{len(people)} patients x {sizes.days} days x 2 cuff readings = {envelopes} envelopes; "
            f"newest {sizes.single} sent one per request, next {sizes.batched} in lists of {sizes.batch}, "
            "the rest seeded directly (bypassing HTTP). "
            f"{sizes.searches} timed searches per query after {sizes.warmup} warm-up.",
            file=sys.stderr,
            flush=True,
        )
    host = machine.describe()
    results: list[EngineResult] = []
    for engine in [] if args.no_main else engines:
        started = time.perf_counter()
        result = run_engine(engine, sizes, people, profile=args.profile)
        print(f"  {engine}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        results.append(result)
        print(report.render(result), flush=True)
    served: dict[str, Any] = {}
    if args.served:
        from .served import run as run_served

        for engine in engines:
            result_served = run_served(
                engine,
                people[: min(len(people), 20)],
                workers=args.workers,
                singles=400 if args.quick else 2_000,
                lists=args.served_lists or (5 if args.quick else 20),
                gateways=args.served_gateways,
                apart=args.served_apart,
                say=lambda m: print(f"  {m}", file=sys.stderr, flush=True),
            )
            served[engine] = result_served.as_json()
            print(json.dumps({"served": served[engine]}, indent=2), flush=True)
    scaled: dict[str, Any] = {}
    if args.scale:
        from .scale import run as run_scale

        for engine in engines:
            scaled[engine] = run_scale(engine, args.scale, keep=args.keep_store, reuse=args.reuse_store)
            print(json.dumps({"scale": scaled[engine]}, indent=2), flush=True)
    since = "<90 days ago>"
    payload = {
        "machine": host | {"load_average_at_end": machine.describe()["load_average_1_5_15"]},
        "source": machine.source(),
        "sizes": vars(sizes) | {"mode": "quick" if args.quick else "full", "envelopes": envelopes},
        "queries": {q.kind: f"GET /fhir/Observation?{q.describe}" for q in clinician_queries(since)},
        "engines": {r.engine: r.as_json() for r in results},
        **({"served": served} if served else {}),
        **({"scale": scaled} if scaled else {}),
    }
    found = targets.collect(payload, tuple(engines))
    payload["targets"] = targets.as_json(found)
    out = args.out or _default_out(payload["source"]["commit"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nIssue 11's targets in this run:\n\n{targets.render(found)}", flush=True)
    print(f"results written to {out}", file=sys.stderr)
    return 0


def _default_out(commit: str) -> Path:
    """``bench/results/bench-<UTC time>-<commit>.json`` (the folder is not committed)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(__file__).resolve().parent / "results" / f"bench-{stamp}-{commit}.json"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
