"""Migrations 0013 and 0014 on SQLite and PostgreSQL: each empties the kept worklist parts of the format before it
(a cache; a view computes them again), and goes down.

- 0013: running parts with counts for a fixed period, which cannot be finished at a later instant;
- 0014: running parts with the readings' instants as ISO text (now whole microseconds).
"""

from __future__ import annotations

import pytest
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


@pytest.mark.parametrize(
    ("before", "parts"),
    [
        ("0012_h12parts", '{"counts": {}}'),
        ("0013_h12clock", '{"format": 3, "times": {"systolic": ["2026-11-30T07:00:00+00:00"]}}'),
    ],
    ids=["0013", "0014"],
)
def test_the_kept_parts_of_the_earlier_format_are_emptied_and_the_migration_goes_down(
    fresh_url: str, before: str, parts: str
) -> None:
    upgrade(fresh_url, before)
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO worklist_summary (patient_key, mark, until, body, observations, parts)"
                " VALUES ('k', 'm', :t, '{}', 3, :parts)"
            ),
            {"t": "2026-12-01 00:00:00", "parts": parts},
        )
    engine.dispose()
    assert _kept(fresh_url) == 1
    upgrade(fresh_url)
    assert _kept(fresh_url) == 0
    command.downgrade(alembic_config(fresh_url), before)
    assert _kept(fresh_url) == 0
