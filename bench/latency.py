"""Clinician search latency through GET /fhir/Observation."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import cycle
from typing import Any

from .client import TestClient
from .stats import Latency

BP_LOINC = "http://loinc.org|85354-9"
_TOTAL = re.compile(rb'"total":\s*(\d+)')


@dataclass(frozen=True)
class Query:
    kind: str
    describe: str
    params: Callable[[str], dict[str, str]]  # patient id -> query parameters


def clinician_queries(since: str) -> list[Query]:
    """The two searches a clinician's view makes: a 90-day blood-pressure series and the latest value."""
    return [
        Query(
            "bp-90-days",
            f"patient=ID&code={BP_LOINC}&date=ge{since}&_count=200",
            lambda pid: {"patient": pid, "code": BP_LOINC, "date": f"ge{since}", "_count": "200"},
        ),
        Query(
            "bp-latest",
            f"patient=ID&code={BP_LOINC}&_sort=-date&_count=1",
            lambda pid: {"patient": pid, "code": BP_LOINC, "_sort": "-date", "_count": "1"},
        ),
    ]


@dataclass(frozen=True)
class SearchRun:
    query: Query
    latency: Latency
    mean_entries: float
    mean_total: float

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.query.kind,
            "query": f"GET /fhir/Observation?{self.query.describe}",
            "latency": self.latency.as_json(),
            "mean_entries": round(self.mean_entries, 1),
            "mean_total": round(self.mean_total, 1),
        }


def search(
    client: TestClient, headers: dict[str, str], query: Query, patient_ids: list[str], count: int, warmup: int
) -> SearchRun:
    """``warmup`` untimed searches, then ``count`` timed ones, cycling through the patients."""
    patients = cycle(patient_ids)
    for _ in range(warmup):
        client.get("/fhir/Observation", params=query.params(next(patients)), headers=headers).raise_for_status()
    times: list[float] = []
    entries = totals = 0
    for n in range(count):
        params = query.params(next(patients))
        t0 = time.perf_counter()
        response = client.get("/fhir/Observation", params=params, headers=headers)
        times.append(time.perf_counter() - t0)
        response.raise_for_status()
        # counted in the bytes, not parsed: the client shares the server's process here, and parsing each 200-entry
        # Bundle (~5 ms, ~30,000 objects) between two timed requests put its collections and cold caches into the
        # next one's time (p50 5.0-6.9 ms against 6.1-9.5 ms parsed, SQLite series at 1 M); the first is parsed whole
        body = response.content
        found, total = body.count(b'"fullUrl":'), _TOTAL.search(body)
        if n == 0:  # the first parsed whole: what the bytes counted is its entries and total
            bundle = response.json()
            if len(bundle.get("entry", [])) != found or bundle.get("total") != (int(total.group(1)) if total else None):
                raise RuntimeError(f"{query.kind}: the Bundle's entries or total were miscounted in its bytes")
        entries += found
        totals += int(total.group(1)) if total else 0
    if not entries:
        raise RuntimeError(f"{query.kind}: every search came back empty; consent or seeding is wrong")
    return SearchRun(query, Latency.of(times), entries / count, totals / count)


@dataclass(frozen=True)
class RoundTrips:
    path: str
    latency: Latency

    def as_json(self) -> dict[str, Any]:
        return {"query": f"GET {self.path}", "latency": self.latency.as_json()}


def round_trips(client: TestClient, path: str, count: int, warmup: int) -> RoundTrips:
    """``count`` timed GETs of ``path`` after ``warmup``: the in-process app's own round trip, the floor under every
    search measured in the same run (middleware, routing, a response; no token, no database)."""
    for _ in range(warmup):
        client.get(path).raise_for_status()
    times: list[float] = []
    for _ in range(count):
        t0 = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - t0)
        response.raise_for_status()
    return RoundTrips(path, Latency.of(times))
