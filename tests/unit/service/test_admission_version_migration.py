"""Migrations 0010 and 0011 on SQLite and PostgreSQL: ``admission_version`` moves with every change to what admits an
upload (a patient, its enrolment on a gateway, a gateway's devices) or to what ingest triages it under (a patient's
monitoring settings), not with other writes, and the migrations go down."""

from __future__ import annotations

from datetime import datetime

from alembic import command
from sqlalchemy import create_engine, inspect, text

from homediag.store.database import alembic_config, upgrade


def test_the_counter_moves_with_admission_changes_only_and_the_migration_goes_down(fresh_url: str) -> None:
    upgrade(fresh_url, "0009_h12first")
    upgrade(fresh_url)
    engine = create_engine(fresh_url)
    at = datetime(2026, 11, 30, 12, 0)

    def counter() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("select n from admission_version where id = 0")).scalar_one())

    try:
        assert counter() == 0
        changes = [
            "insert into patient (id, patient_key, pilot, active, enrolled_at, enrolled_by)"
            " values ('p1', 'k1', 'pilot', true, :at, 'admin')",
            "insert into app_user (id, name, role, token_hash, created_at) values ('g1', 'g', 'gateway', 'h', :at)",
            "insert into gateway_patient (gateway_id, patient_key, assigned_at) values ('g1', 'k1', :at)",
            "insert into gateway_device (gateway_id, serial, assigned_at) values ('g1', '*', :at)",
            'insert into monitoring_settings (patient_key, version, "group", content, valid_from, recorded_at,'
            " recorded_by) values ('k1', 1, 'hypertension', '{}', :at, :at, 'admin')",
            "update monitoring_settings set note = 'n'",
            "delete from gateway_patient",
            "update patient set active = false",
            "delete from gateway_device",
        ]
        moved = []
        for statement in changes:
            before = counter()
            with engine.begin() as conn:
                conn.execute(text(statement), {"at": at})
            moved.append(counter() > before)
        assert moved == [True, False, True, True, True, True, True, True, True]  # a user is not admission
    finally:
        engine.dispose()

    command.downgrade(alembic_config(fresh_url), "0009_h12first")
    engine = create_engine(fresh_url)
    try:
        assert "admission_version" not in inspect(engine).get_table_names()
        with engine.begin() as conn:  # no trigger left behind writing to the table that is gone
            conn.execute(text("update patient set active = true"))
            conn.execute(text("update monitoring_settings set note = 'm'"))
    finally:
        engine.dispose()
