"""The kept rows (``homediag.monitoring.persisted``) do not pile up: a settings change removes the kept triages no
read asks for any more (made under a content no longer in force at their reading's time), and a key rotation the
rows of the old patient keys. What a clinician sees stays right. Over HTTP, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from test_monitoring import cuff, hours_ago, put_settings

from homediag.keys import write_key_file
from homediag.monitoring import store
from homediag.rotation import rotate
from homediag.store import models as m
from homediag.synthetic import synthetic_patients
from homediag.users import Principal

ADMIN = Principal("admin-test", "test admin", "admin", None)


def _enrolled(pilot):  # type: ignore[no-untyped-def]
    synthetic = synthetic_patients(1, seed=31)[0]
    pid = pilot.enrol(synthetic.cpr, family=synthetic.family, given=synthetic.given)
    pilot.consent(pid)
    return synthetic, pid


def _kept(runtime, table, oid: str | None = None) -> int:  # type: ignore[no-untyped-def]
    with runtime.sessions() as session:
        stmt = select(func.count()).select_from(table)
        if oid is not None:
            stmt = stmt.where(table.observation_id == oid)
        return int(session.execute(stmt).scalar_one())


def _colours(client, tokens, pid: str) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    found = client.get(f"/monitoring/patients/{pid}/readings?days=5", headers=tokens.auth("clinician"))
    assert found.status_code == 200, found.text
    return {r["observation"].split("/")[1]: r["colour"] for r in found.json()["readings"]}


def test_a_back_dated_settings_change_removes_the_kept_triages_it_overrides(client, tokens, pilot, runtime) -> None:  # type: ignore[no-untyped-def]
    synthetic, pid = _enrolled(pilot)
    old = cuff(client, tokens, synthetic, 140, 80, hours_ago(48))  # before the change's valid_from: keeps its own
    recent = cuff(client, tokens, synthetic, 140, 80, hours_ago(5))
    assert _kept(runtime, m.ReadingTriage, old) == _kept(runtime, m.ReadingTriage, recent) == 1  # kept at ingest
    body = {"thresholds": {"systolic": {"yellow_high": 145}}, "valid_from": hours_ago(24).isoformat()}
    assert put_settings(client, tokens, pid, body, 0).status_code == 200
    assert _kept(runtime, m.ReadingTriage, old) == 1  # its content is still the one in force at its time
    assert _kept(runtime, m.ReadingTriage, recent) == 0  # made under the defaults, which no longer apply to it
    store.forget()
    assert _colours(client, tokens, pid) == {old: "yellow", recent: "green"}
    assert _kept(runtime, m.ReadingTriage, recent) == 1  # kept again under the content in force


def test_a_key_rotation_removes_the_old_keys_kept_rows(client, tokens, pilot, runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    synthetic, pid = _enrolled(pilot)
    reading = cuff(client, tokens, synthetic, 150, 85, hours_ago(3))
    with runtime.sessions() as session:
        old_key = session.execute(select(m.Patient.patient_key).where(m.Patient.id == pid)).scalar_one()
    assert _kept(runtime, m.ReadingValues, reading) == _kept(runtime, m.ReadingShape, reading) == 1
    key_file = tmp_path / "keys.json"
    write_key_file(key_file, runtime.keys)
    rotate(runtime, ADMIN, key_file, vault=False, pseudonym=True)
    with runtime.sessions() as session:
        for table in (m.ReadingValues, m.ReadingTriage, m.ReadingShape, m.WorklistSummary):
            left = session.execute(select(func.count()).select_from(table).where(table.patient_key == old_key))
            assert left.scalar_one() == 0, table.__tablename__
    store.forget()
    assert _colours(client, tokens, pid) == {reading: "yellow"}  # computed and kept again under the new key
    assert _kept(runtime, m.ReadingTriage, reading) == 1
