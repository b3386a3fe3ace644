"""Migration 0012 on SQLite and PostgreSQL: ``worklist_summary`` gets the Observation count and the running parts of
a kept part, the kept parts of the earlier format are emptied (a cache), and the migration goes down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from homediag.store.database import alembic_config, upgrade


def _columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("worklist_summary")}
    finally:
        engine.dispose()


def test_the_kept_parts_get_a_count_and_running_parts_and_the_migration_goes_down(fresh_url: str) -> None:
    upgrade(fresh_url, "0011_h11hot")
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO worklist_summary (patient_key, mark, until, body) VALUES ('k', 'm', :t, '{}')"),
            {"t": "2026-12-01 00:00:00"},
        )
    upgrade(fresh_url)
    assert {"observations", "parts"} <= _columns(fresh_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM worklist_summary")).scalar_one() == 0
    engine.dispose()
    command.downgrade(alembic_config(fresh_url), "0011_h11hot")
    assert not {"observations", "parts"} & _columns(fresh_url)
