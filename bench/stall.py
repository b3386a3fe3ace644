"""Does a large POST /ingest hold up other requests? Probed on one event loop, as one server worker runs.

The app is driven with httpx's ASGITransport on one asyncio loop, as uvicorn runs it. One probe at
a time (the clinician's latest-value search) is due every 50 ms, first with nothing else going on,
then while one POST /ingest of a list of envelopes is processed. A probe's latency counts from when
it was due, not from when the loop got round to sending it: a client of a real server would have
sent it then. If the ingest service ran on the event loop, every probe due meanwhile would wait for
the whole list to be stored; run in the thread pool, probes only share the interpreter with it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx

from homediag.api.app import create_app
from homediag.runtime import Runtime

from .latency import Query
from .stats import Latency

INTERVAL = 0.05
IDLE_PROBES = 20


@dataclass(frozen=True)
class StallRun:
    envelopes: int
    ingest_ms: float
    idle: Latency  # probe latency with nothing else running
    during: Latency  # probes due while the POST /ingest ran

    def as_json(self) -> dict[str, Any]:
        return {
            "envelopes": self.envelopes,
            "ingest_ms": round(self.ingest_ms, 1),
            "probe_idle": self.idle.as_json(),
            "probe_during_ingest": self.during.as_json(),
        }


def measure(
    rt: Runtime,
    gateway: dict[str, str],
    clinician: dict[str, str],
    probe: Query,
    patient_id: str,
    envelopes: list[dict[str, Any]],
) -> StallRun:
    return asyncio.run(_measure(rt, gateway, clinician, probe, patient_id, envelopes))


async def _measure(
    rt: Runtime,
    gateway: dict[str, str],
    clinician: dict[str, str],
    probe: Query,
    patient_id: str,
    envelopes: list[dict[str, Any]],
) -> StallRun:
    body = json.dumps(envelopes).encode()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://testserver"
    ) as client:

        async def probes(until: asyncio.Event | None) -> list[tuple[float, float]]:
            """(due, latency) of probes, one at a time, due every INTERVAL: IDLE_PROBES of them, or until
            ``until`` is set."""
            start, k = time.perf_counter(), 0
            out: list[tuple[float, float]] = []
            while (until is None and len(out) < IDLE_PROBES) or (until is not None and not until.is_set()):
                due = start + k * INTERVAL
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                (
                    await client.get("/fhir/Observation", params=probe.params(patient_id), headers=clinician)
                ).raise_for_status()
                out.append((due, time.perf_counter() - due))
                k = max(
                    k + 1, math.ceil((time.perf_counter() - start) / INTERVAL)
                )  # a late probe is not followed by a burst
            return out

        idle = await probes(None)
        finished = asyncio.Event()
        prober = asyncio.create_task(probes(finished))
        await asyncio.sleep(1.5 * INTERVAL)
        t0 = time.perf_counter()
        response = await client.post("/ingest", content=body, headers={**gateway, "Content-Type": "application/json"})
        t1 = time.perf_counter()
        finished.set()
        during = [latency for due, latency in await prober if t0 <= due <= t1]
        response.raise_for_status()
    if not during:
        raise RuntimeError("no probe was due while the POST /ingest ran; send more envelopes")
    return StallRun(len(envelopes), (t1 - t0) * 1000, Latency.of([lat for _, lat in idle]), Latency.of(during))
