"""Where a list of 100 envelopes' time goes in process, without a profiler's overhead.

``python -m bench.phases [sqlite|postgresql] [--lists N] [--freeze]``: a fresh database, 10 enrolled patients, then
N lists of 100 new cuff envelopes through ``IngestService.post`` on this thread (no HTTP, no token), with the named
steps of the write path timed by wrappers (wall time and this thread's CPU, each step's own: a step inside another is
subtracted from it), and the same-run ceiling (``bench.ceiling``, both variants) on the same kind of envelopes.
Prints ms per list for each step and the rate beside the ceiling. ``--freeze``: ``gc.freeze()`` after the
warm-up, as the server does after its start.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from homediag.api.app import create_app
from homediag.ingest import IngestService
from homediag.synthetic import synthetic_patients
from homediag.users import authenticate

from . import ceiling, data, env
from .client import TestClient
from .pilot import enrol

# (module, attribute, label): the steps timed; a module-level name is wrapped where it is looked up
STEPS = [
    ("homediag.bodies", "loads", "parse the body"),
    ("homediag.bodies", "text_problem", "NUL/surrogate check"),
    ("homediag.fhir_profiles.fhirjson", "dumps", "fhirjson.dumps (envelope bodies, served text)"),
    ("homediag.envelope.Envelope", "model_validate", "envelope model"),
    ("homediag.adapters.devices.blood_pressure.BleBloodPressureAdapter", "decode", "decode"),
    ("homediag.ingest.admission.Admission", "patient", "admission"),
    ("homediag.ingest.admission.Admission", "registrations", "admission"),
    ("sqlalchemy.orm.Session", "commit", "commit"),
    ("homediag.ingest.envelopes", "check_rules", "profile rules"),
    ("homediag.ingest.envelopes", "build", "build"),
    ("homediag.ingest.envelopes", "redact", "redact"),
    ("homediag.ingest.envelopes", "patient_key", "pseudonymise"),
    ("homediag.ingest.envelopes", "observation_row", "observation row"),
    ("homediag.ingest.pipeline", "seal_upload", "seal upload"),
    ("homediag.ingest.pipeline", "readable", "readable copy"),
    ("homediag.store.repositories.observations", "insert_new", "claim + insert Observations"),
    ("homediag.store.repositories.observations", "_copy", "Observations COPY (PostgreSQL)"),
    ("homediag.store.repositories.observations", "copy_rows", "Observations COPY (PostgreSQL)"),
    ("homediag.served", "fill", "served text"),
    ("homediag.monitoring.ingested", "keep_ingested", "values + triage"),
    ("homediag.access.ingested", "keep_shapes", "shapes"),
    ("homediag.access.ingested", "shape_of", "shapes"),
    ("homediag.store.repositories.kept", "insert_new", "kept rows insert"),
    ("homediag.access.worklist_grown", "_grow_pending", "worklist growth"),
    ("homediag.store.repositories.uploads", "insert_many", "uploads insert"),
    ("homediag.audit", "_write", "audit append"),
    ("homediag.store.repositories.devices", "upsert_many", "devices"),
]

_spent: dict[str, float] = defaultdict(float)
_cpu: dict[str, float] = defaultdict(float)
_stack: list[list[float]] = []


def _timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _stack.append([0.0, 0.0])
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            took, cpu = time.perf_counter() - t0, time.thread_time() - c0
            inner, inner_cpu = _stack.pop()
            _spent[label] += took - inner
            _cpu[label] += cpu - inner_cpu
            if _stack:
                _stack[-1][0] += took
                _stack[-1][1] += cpu

    return wrapper


_gc = {"seconds": 0.0, "collections": 0.0, "started": 0.0}


def _collecting(phase: str, _info: dict[str, Any]) -> None:
    if phase == "start":
        _gc["started"] = time.perf_counter()
    else:
        _gc["seconds"] += time.perf_counter() - _gc["started"]
        _gc["collections"] += 1


def _wrap() -> None:
    import importlib

    for module, name, label in STEPS:
        if label is None:
            continue
        try:
            mod: Any = importlib.import_module(module)
        except ModuleNotFoundError:  # a class: module.Class
            module, _, cls = module.rpartition(".")
            mod = getattr(importlib.import_module(module), cls)
        if hasattr(mod, name):
            setattr(mod, name, _timed(label, getattr(mod, name)))


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.phases", description=__doc__.split("\n\n")[0])
    parser.add_argument("engine", nargs="?", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--lists", type=int, default=10, help="lists of 100 envelopes timed (default 10)")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after the warm-up, as the server does")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    engine, n_lists, freeze = args.engine, args.lists, args.freeze
    people = synthetic_patients(10)
    envelopes = data.cuff_envelopes(people, 60 + n_lists * 10)
    with env.fresh_database(engine) as url, env.runtime(url) as rt:
        with TestClient(create_app(rt)) as client:
            first_day = (datetime.now(data.COPENHAGEN) - timedelta(days=61 + n_lists * 10)).date()
            pilot = enrol(client, rt, people, first_day)
        with rt.sessions() as session:
            gateway = authenticate(session, pilot.tokens["gateway"])
        service = IngestService(rt)
        lists = [json.dumps(envelopes[i : i + 100]).encode() for i in range(0, (n_lists + 1) * 100, 100)]
        service.post(gateway, lists[0])  # warm-up
        _wrap()
        if freeze:  # as the server does after its start (``homediag.server``)
            gc.freeze()
        gc.callbacks.append(_collecting)
        _spent.clear()
        created, t0 = 0, time.perf_counter()
        for body in lists[1:]:
            with_step = _timed("the rest", service.post)
            results = with_step(gateway, body).body["results"]
            created += sum(sum(o["outcome"] == "created" for o in r["observations"]) for r in results)
        seconds = time.perf_counter() - t0
        spent, cpu = dict(_spent), dict(_cpu)  # the ceiling below runs some of the same steps
        gc.callbacks.remove(_collecting)
        rest = envelopes[(n_lists + 1) * 100 :]
        full = ceiling.measure(rt, rest[: len(rest) // 2], full_validation=True)
        rules = ceiling.measure(rt, rest[len(rest) // 2 :], full_validation=False)
    print(f"{engine}: lists of 100: {created / seconds:.0f} Observations/s ({created} stored, {n_lists} lists);")
    print(
        f"  same-run ceiling {full.per_s:.0f} (full validation) / {rules.per_s:.0f} (rules) Observations/s:"
        f" {created / seconds / full.per_s:.2f}x / {created / seconds / rules.per_s:.2f}x"
    )
    total = sum(spent.values())
    for label, took in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(
            f"  {took / n_lists * 1000:7.2f} ms/list {took / total:6.1%}"
            f" (CPU here {cpu[label] / n_lists * 1000:6.2f} ms)  {label}"
        )
    print(
        f"  of which the garbage collector: {_gc['seconds'] / n_lists * 1000:.2f} ms/list"
        f" ({_gc['collections'] / n_lists:.0f} collections a list;"
        f" heap {'frozen' if freeze else 'not frozen'})"
    )
    print(f"  {total / n_lists * 1000:7.2f} ms/list in all (CPU here {sum(cpu.values()) / n_lists * 1000:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
