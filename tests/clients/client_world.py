"""The world the third-party client tests read: one consenting patient with blood-pressure readings and
one without consent, seeded through the real API."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from homediag.synthetic import cuff_payload, envelope, synthetic_patients

BP = "http://loinc.org|85354-9"


@dataclass
class World:
    consented: str
    other: str
    bp: list[str]  # the consented patient's blood-pressure Observation ids
    patient: object  # the consented patient (synthetic)


def seed(pilot, tokens, readings: int = 7) -> World:
    patients = synthetic_patients(2, seed=505)
    consented, other = pilot.enrol(patients[0].cpr), pilot.enrol(patients[1].cpr)
    pilot.consent(consented)
    rng = random.Random(8)
    bp: list[str] = []
    for patient, count in ((patients[0], readings), (patients[1], 3)):
        envelopes = [
            envelope(patient, cuff_payload(rng, datetime(2026, 8, 1 + day, 7, 30)), datetime.now(UTC))
            for day in range(count)
        ]
        response = pilot.client.post("/ingest", json=envelopes, headers=tokens.auth("gateway"))
        assert response.status_code in (200, 201), response.text
        if patient is patients[0]:
            bp = [o["id"] for r in response.json()["results"] for o in r["observations"] if o["code"] == "150020"]
    assert len(bp) == readings
    return World(consented, other, bp, patients[0])


def ingest_one(pilot, tokens, world: World, day: int) -> None:
    body = envelope(world.patient, cuff_payload(random.Random(day), datetime(2026, 8, day, 9, 0)), datetime.now(UTC))
    response = pilot.client.post("/ingest", json=body, headers=tokens.auth("gateway"))
    assert response.status_code == 201, response.text
