"""The worklist notices Observations written or deleted by any path, not only by this process's ingest: SQL typed by
hand on another connection (a restore, a back-fill script, another service) moves the kept count the worklist's
change detector reads (``observation_count``, migration 0015). Over HTTP, the real ASGI app, SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, func, insert, select
from web_support import COPENHAGEN, WebPilot, sign_in, web, web_pilot  # noqa: F401 - fixtures

from homediag.adapters.devices import DeviceTime, blood_pressure
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.synthetic import envelope, synthetic_patients


def _row(html: str, patient_id: str) -> str:
    found = re.search(rf'<tr data-patient="{patient_id}">(.*?)</tr>', html, re.S)
    assert found, html
    return found.group(1)


def test_a_reading_deleted_and_stored_again_by_sql_elsewhere_shows_on_the_next_view(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    person, pid = synthetic_patients(5, seed=12)[0], next(iter(web_pilot.shown))
    now = datetime.now(COPENHAGEN)
    taken = now - min(timedelta(hours=1), (now - datetime.combine(now.date(), time.min, COPENHAGEN)) / 2)
    stamp = DeviceTime(taken.year, taken.month, taken.day, taken.hour, taken.minute, 0)
    high = blood_pressure.encode((Decimal(204), Decimal(121), Decimal(149)), timestamp=stamp, pulse_rate=70)
    response = pilot.client.post(
        "/ingest", json=[envelope(person, high, taken + timedelta(minutes=1))], headers=pilot.tokens.auth("gateway")
    )
    assert response.status_code == 200, response.text
    assert "204/121" in _row(web.get("/app/worklist").text, pid)
    assert "204/121" in _row(web.get("/app/worklist").text, pid)  # remembered

    table = m.Observation.__table__
    other = create_engine(runtime.engine.url)  # another connection pool, as another process would have
    try:
        with other.begin() as conn:
            key = conn.execute(select(m.Patient.patient_key).where(m.Patient.id == pid)).scalar_one()
            last = conn.execute(select(func.max(table.c.effective_start)).where(table.c.patient_key == key)).scalar()
            at_last = (table.c.patient_key == key) & (table.c.effective_start == last)  # the reading's Observations
            copies = [
                {c: v for c, v in r._mapping.items() if c != "txn"} for r in conn.execute(select(table).where(at_last))
            ]
            conn.execute(delete(table).where(at_last))
        assert "204/121" not in _row(web.get("/app/worklist").text, pid)
        with other.begin() as conn:
            conn.execute(insert(table), copies)
        assert "204/121" in _row(web.get("/app/worklist").text, pid)
    finally:
        other.dispose()
