"""Synthetic cuff readings: twice a day per patient, and bulk seeding of the older ones.

Seeding bypasses HTTP on purpose (100,000 Observations through POST /ingest would take minutes):
it decodes each envelope with the real adapter, builds with ``homediag.fhir_profiles.build`` and
makes rows exactly as ``homediag.ingest.IngestService`` does, then inserts them in bulk, with the rows of
the devices they name (ingest stores a device with its first reading: a page names it in each point). It
writes no upload log or audit records. Searches are always measured through HTTP.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from homediag import served
from homediag.adapters.devices import get as get_adapter
from homediag.clock import utcnow
from homediag.envelope import Envelope
from homediag.fhir_profiles import BuildContext, Built, build
from homediag.identity import patient_key
from homediag.ingest import device_id, observation_row
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.store.repositories import devices
from homediag.synthetic import SyntheticPatient, cuff_payload, envelope

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
HOURS = (7, 20)  # morning and evening; never in the 02:00-03:00 DST gap
SEED_CHUNK = 2_000


def cuff_envelopes(
    patients: list[SyntheticPatient], days: int, seed: int = 2026, second: int = 0, first_day: int = 1
) -> list[dict[str, Any]]:
    """Two 0x2A35 envelopes a day per patient for ``days`` days from ``first_day`` days ago (1: yesterday) back,
    newest first, taken at ``second`` of their minute (a run on a kept store takes a second of its own: its readings
    are not stored yet).

    About 3% carry the irregular-pulse status bit, so they make a third Observation.
    """
    rng = random.Random(seed)
    today = datetime.now(COPENHAGEN).replace(second=second, microsecond=0)
    dated: list[tuple[datetime, dict[str, Any]]] = []
    for n, person in enumerate(patients):
        for day in range(first_day, first_day + days):
            for hour in HOURS:
                taken = (today - timedelta(days=day)).replace(hour=hour, minute=rng.randint(0, 50))
                payload = cuff_payload(
                    rng, taken.replace(tzinfo=None), hypertensive=n % 4 == 1, irregular=rng.random() < 0.03
                )
                dated.append((taken, envelope(person, payload, taken + timedelta(minutes=2))))
    dated.sort(key=lambda item: item[0], reverse=True)
    return [env for _, env in dated]


def observation_rows(rt: Runtime, raw: dict[str, Any], patient_ids: dict[str, str]) -> list[dict[str, Any]]:
    """The observation rows POST /ingest would store for one valid envelope (the ingest service's own row builder)."""
    return _rows_and_device(rt, raw, patient_ids)[0]


def _rows_and_device(
    rt: Runtime, raw: dict[str, Any], patient_ids: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``observation_rows`` and the device row's values ingest writes beside them."""
    env = Envelope.model_validate(raw)
    adapter = get_adapter(env.adapter)
    pkey = patient_key(env.patient.value, rt.keys.pseudonym)
    dev_id = device_id(env.device)
    ctx = BuildContext(
        patient_id=patient_ids[pkey], device_id=dev_id, gateway_received_at=env.received_at, local_zone=rt.local_zone
    )
    built: list[Built] = [b for reading in adapter.decode(env.payload_bytes()) for b in build(reading, ctx)]
    now = utcnow()
    rows = [
        observation_row(b, patient_key=pkey, device_id=dev_id, adapter=adapter.id, upload_id=None, received_at=now)
        for b in built
    ]
    return rows, {"id": dev_id, "manufacturer": env.device.manufacturer, "model": env.device.model}


def seed(rt: Runtime, envelopes: list[dict[str, Any]]) -> int:
    """Insert the Observations of ``envelopes`` directly, in chunks, and their devices' rows; returns how many."""
    with rt.sessions() as session:
        patient_ids = {pkey: pid for pkey, pid in session.execute(select(m.Patient.patient_key, m.Patient.id))}
    total = 0
    rows: list[dict[str, Any]] = []
    named: dict[str, dict[str, Any]] = {}
    for raw in envelopes:
        built, device = _rows_and_device(rt, raw, patient_ids)
        rows += built
        named.setdefault(device["id"], device)
        if len(rows) >= SEED_CHUNK:
            total += _insert(rt, rows)
            rows = []
    now = utcnow()
    with rt.sessions.begin() as session:  # as ingest writes them (``IngestService``'s batch)
        devices.upsert_many(
            session,
            [
                {"identifier": None, "kind": None, "resource": None, **values, "first_seen": now, "last_seen": now}
                for _, values in sorted(named.items())
            ],
        )
    return total + (_insert(rt, rows) if rows else 0)


def _insert(rt: Runtime, rows: list[dict[str, Any]]) -> int:
    claims = [
        {
            "patient_key": r["patient_key"],
            "dedup": r["dedup"],
            "observation_id": r["id"],
            "effective_start": r["effective_start"],
        }
        for r in rows
    ]
    with rt.engine.begin() as conn:  # Core executemany: one statement for the chunk (and one for its dedup claims)
        conn.execute(insert(m.ObservationDedup.__table__), claims)
        served.fill(rows)  # as the ingest service stores them: on SQLite the text once, as the resource
        if served.stored_once(conn.dialect.name):
            rows = [{**r, "served_json": None} for r in rows]
        conn.execute(insert(m.Observation.__table__), rows)
    return len(rows)
