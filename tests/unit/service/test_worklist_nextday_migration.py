"""Migration 0014 on SQLite and PostgreSQL: the kept worklist parts of the earlier format (running parts with the
readings' instants as ISO text) are emptied (a cache), and the migration goes down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from homediag.store.database import alembic_config, upgrade


def _kept(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM worklist_summary")).scalar_one())
    finally:
        engine.dispose()


def test_the_kept_parts_with_iso_instants_are_emptied_and_the_migration_goes_down(fresh_url: str) -> None:
    upgrade(fresh_url, "0013_h12clock")
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO worklist_summary (patient_key, mark, until, body, observations, parts)"
                " VALUES ('k', 'm', :t, '{}', 3, :parts)"
            ),
            {
                "t": "2026-12-01 00:00:00",
                "parts": '{"format": 3, "times": {"systolic": ["2026-11-30T07:00:00+00:00"]}}',
            },
        )
    engine.dispose()
    assert _kept(fresh_url) == 1
    upgrade(fresh_url)
    assert _kept(fresh_url) == 0
    command.downgrade(alembic_config(fresh_url), "0013_h12clock")
    assert _kept(fresh_url) == 0
