"""The same-run ceiling: what one core does in process for the work behind an ingest.

decode (JSON body, envelope model, adapter) -> build -> profile rules -> pseudonymise -> insert (the ingest's own
``observations.insert_new``: on PostgreSQL a claim and a COPY; one transaction per list), on the bench's own thread,
with no HTTP, no upload log and no audit. Two variants: with full ``fhir.resources`` validation of every built
Observation (what the issue's targets are stated against: with the invariants and the profile rules) and with the
profile rules only (what the hot path runs, ``check_built``: the builder is correct by construction). Every HTTP
figure is reported as a ratio to these, measured minutes apart on the same machine, so that a figure can be
compared across noisy machines.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from homediag.adapters.devices import get as get_adapter
from homediag.clock import utcnow
from homediag.envelope import Envelope
from homediag.fhir_profiles import BuildContext, build, check_built, check_rules, check_structure, fhirjson
from homediag.identity import patient_key
from homediag.ingest import device_id, observation_row
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.store.repositories import observations


@dataclass(frozen=True)
class Ceiling:
    variant: str
    observations: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.observations / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "observations": self.observations,
            "seconds": round(self.seconds, 3),
            "observations_per_s": round(self.per_s, 1),
        }


def measure(rt: Runtime, envelopes: list[dict[str, Any]], *, full_validation: bool, batch: int = 100) -> Ceiling:
    """Ingest ``envelopes`` (new readings) in lists of ``batch`` in process; Observations stored per second."""
    with rt.sessions() as session:
        patient_ids = {pkey: pid for pkey, pid in session.execute(select(m.Patient.patient_key, m.Patient.id))}
    bodies = [json.dumps(envelopes[i : i + batch]).encode() for i in range(0, len(envelopes), batch)]

    def rows_of(raw: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        env = Envelope.model_validate(raw)
        adapter = get_adapter(env.adapter)
        pkey = patient_key(env.patient.value, rt.keys.pseudonym)
        dev_id = device_id(env.device)
        ctx = BuildContext(
            patient_id=patient_ids[pkey],
            device_id=dev_id,
            gateway_received_at=env.received_at,
            local_zone=rt.local_zone,
        )
        for reading in adapter.decode(env.payload_bytes()):
            for b in build(reading, ctx):
                # full: the invariants, the profile and fhir.resources; else what ingest runs (``check_built``)
                issues = (
                    check_rules(b.resource) + check_structure(b.resource)
                    if full_validation
                    else check_built(b.resource)
                )
                if any(i.severity in ("error", "fatal") for i in issues):
                    raise RuntimeError(f"the ceiling's reading did not validate: {issues}")
                rows.append(
                    observation_row(
                        b,
                        patient_key=pkey,
                        device_id=dev_id,
                        adapter=adapter.id,
                        upload_id=None,
                        received_at=utcnow(),
                    )
                )
        return rows

    # warm-up, not timed: the first validation builds fhir.resources' models (a fifth of a second or more), which a
    # server pays once at its start; measured first in a fresh process it halved the full-validation figure
    rows_of(envelopes[0])
    stored = 0
    start = time.perf_counter()
    for body in bodies:
        rows = [row for raw in fhirjson.loads(body) for row in rows_of(raw)]
        with rt.sessions.begin() as session:
            stored += len(observations.insert_new(session, rows))
    seconds = time.perf_counter() - start
    variant = "full fhir.resources validation" if full_validation else "profile rules only"
    return Ceiling(variant, stored, seconds)
