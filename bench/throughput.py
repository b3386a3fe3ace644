"""Ingest throughput through POST /ingest: one envelope per request, or lists of them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .client import TestClient
from .stats import Latency


@dataclass(frozen=True)
class IngestRun:
    mode: str
    envelopes: int
    observations: int  # Observations created
    requests: int
    seconds: float
    request: Latency

    @property
    def envelopes_per_s(self) -> float:
        return self.envelopes / self.seconds

    @property
    def observations_per_s(self) -> float:
        return self.observations / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "envelopes": self.envelopes,
            "observations": self.observations,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "envelopes_per_s": round(self.envelopes_per_s, 1),
            "observations_per_s": round(self.observations_per_s, 1),
            "request_latency": self.request.as_json(),
        }


def ingest(
    client: TestClient, headers: dict[str, str], envelopes: list[dict[str, Any]], batch: int | None
) -> IngestRun:
    """POST every envelope, alone (``batch=None``) or ``batch`` per request; every one must be created.

    Bodies are serialised before the clock starts; responses are checked after it stops.
    """
    chunks: list[Any] = (
        list(envelopes) if batch is None else [envelopes[i : i + batch] for i in range(0, len(envelopes), batch)]
    )
    bodies = [json.dumps(chunk).encode() for chunk in chunks]
    headers = {**headers, "Content-Type": "application/json"}
    times: list[float] = []
    responses = []
    start = time.perf_counter()
    for body in bodies:
        t0 = time.perf_counter()
        responses.append(client.post("/ingest", content=body, headers=headers))
        times.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start

    created = 0
    for response in responses:
        if response.status_code not in (200, 201):
            raise RuntimeError(f"POST /ingest answered {response.status_code}: {response.text[:500]}")
        payload = response.json()
        for result in payload["results"] if batch is not None else [payload]:
            if result["outcome"] != "created":
                raise RuntimeError(f"an envelope was not created: {json.dumps(result)[:500]}")
            created += sum(1 for o in result["observations"] if o["outcome"] == "created")
    mode = "single" if batch is None else f"batch of {batch}"
    return IngestRun(mode, len(envelopes), created, len(bodies), seconds, Latency.of(times))
