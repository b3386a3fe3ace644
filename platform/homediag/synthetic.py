"""Synthetic people, devices and envelopes for the demo, the tests and the benchmarks.

Nothing here is real: CPRs are made-up numbers with valid dates (day 1-28, so every one is a
valid date in any month), names are combined from short lists, serials carry a ``SYN`` prefix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from homediag.adapters.devices.blood_pressure import encode
from homediag.adapters.devices.readings import DeviceTime

from .identity import CPR_SYSTEM

GIVEN = (
    "Astrid",
    "Bent",
    "Birthe",
    "Carl",
    "Dorte",
    "Erik",
    "Freja",
    "Gunnar",
    "Hanne",
    "Ib",
    "Jytte",
    "Karl",
    "Lis",
    "Mogens",
    "Nina",
    "Ole",
    "Pia",
    "Rasmus",
    "Sonja",
    "Torben",
)
FAMILY = ("Syntesen", "Prøvegaard", "Demoholm", "Testrup", "Eksempelsen", "Fiktivsen", "Opdigtborg", "Modelsen")


@dataclass(frozen=True)
class SyntheticPatient:
    cpr: str
    given: str
    family: str
    cuff_serial: str
    cuff_address: str


def synthetic_cpr(rng: random.Random) -> str:
    """A CPR-shaped number born 1930-1999 (7th digit 0-3 means the 1900s)."""
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(30, 99)
    return f"{day:02d}{month:02d}{year:02d}{rng.randint(0, 3)}{rng.randint(0, 999):03d}"


def synthetic_patients(count: int, seed: int = 2026) -> list[SyntheticPatient]:
    rng = random.Random(seed)
    seen: set[str] = set()
    patients = []
    while len(patients) < count:
        cpr = synthetic_cpr(rng)
        if cpr in seen:
            continue
        seen.add(cpr)
        n = len(patients)
        address = ":".join(
            f"{b:02X}" for b in (0xF4, 0x5E, 0xAB, rng.randrange(256), rng.randrange(256), rng.randrange(256))
        )
        patients.append(
            SyntheticPatient(
                cpr, GIVEN[n % len(GIVEN)], FAMILY[(n * 7 + 3) % len(FAMILY)], f"SYN-BPM-{n + 1:05d}", address
            )
        )
    return patients


def cuff_payload(
    rng: random.Random, taken_at: datetime, *, hypertensive: bool = False, irregular: bool = False
) -> bytes:
    """A real 0x2A35 payload: mmHg, device local time, pulse rate, user 1, measurement status."""
    systolic = rng.randint(135, 170) if hypertensive else rng.randint(105, 138)
    diastolic = rng.randint(max(60, systolic - 70), systolic - 30)
    mean = (systolic + 2 * diastolic) // 3
    status = 0x04 if irregular else 0
    stamp = DeviceTime(taken_at.year, taken_at.month, taken_at.day, taken_at.hour, taken_at.minute, taken_at.second)
    return encode(
        (Decimal(systolic), Decimal(diastolic), Decimal(mean)),
        timestamp=stamp,
        pulse_rate=rng.randint(52, 96),
        user_id=1,
        status=status,
    )


def envelope(
    patient: SyntheticPatient, payload: bytes, received_at: datetime, gateway: str = "tablet-demo-01"
) -> dict[str, Any]:
    return {
        "adapter": "ble-blood-pressure",
        "payload_hex": payload.hex(),
        "device": {
            "manufacturer": "Syntetisk Medico",
            "model": "BPM-1",
            "serial": patient.cuff_serial,
            "address": patient.cuff_address,
        },
        "patient": {"system": CPR_SYSTEM, "value": patient.cpr},
        "gateway": {"id": gateway, "software": "1.4.2"},
        "received_at": received_at.isoformat(),
    }
