"""Migration 0015 on SQLite and PostgreSQL: ``observation_count`` is back-filled from the Observations stored
before it, kept by triggers as any statement inserts, moves or deletes rows afterwards, and goes down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from homediag.store.database import alembic_config, upgrade

_INSERT = text(
    "INSERT INTO observation (id, patient_key, code, category, codes, effective_start, effective_end, status, dedup,"
    " resource, received_at) VALUES (:id, :k, 'c', 'vital-signs', 'x|c', :t, :t, 'final', :id, '{}', :t)"
)


def _counts(url: str) -> dict[str, tuple[int, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT patient_key, observations, latest FROM observation_count")).all()
            return {k: (n, str(latest)[:19]) for k, n, latest in rows}
    finally:
        engine.dispose()


def _run(url: str, sql: str, rows: list[dict[str, str]] | None = None) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql) if rows is None else _INSERT, rows or {})
    engine.dispose()


def test_counts_are_back_filled_kept_by_every_write_and_the_migration_goes_down(fresh_url: str) -> None:
    upgrade(fresh_url, "0014_h12nextday")
    stored = [{"id": f"o{n}", "k": "a" if n < 3 else "b", "t": f"2026-11-2{n} 08:00:00"} for n in range(4)]
    _run(fresh_url, "", stored)
    upgrade(fresh_url)
    assert _counts(fresh_url) == {"a": (3, "2026-11-22 08:00:00"), "b": (1, "2026-11-23 08:00:00")}

    # SQL typed by hand, several rows in one statement: each patient's count grows by its rows, latest moves ahead
    _run(
        fresh_url,
        "",
        [{"id": "o9", "k": "a", "t": "2026-11-29 08:00:00"}, {"id": "o8", "k": "c", "t": "2026-11-01 00:00:00"}],
    )
    assert _counts(fresh_url)["a"] == (4, "2026-11-29 08:00:00")
    assert _counts(fresh_url)["c"] == (1, "2026-11-01 00:00:00")
    # a key rotation moves rows to another key; an erasure deletes them and the key's row goes
    _run(fresh_url, "UPDATE observation SET patient_key = 'b2' WHERE patient_key = 'b'")
    assert "b" not in _counts(fresh_url) and _counts(fresh_url)["b2"][0] == 1
    _run(fresh_url, "DELETE FROM observation WHERE patient_key = 'a' AND id = 'o0'")
    assert _counts(fresh_url)["a"][0] == 3
    _run(fresh_url, "DELETE FROM observation WHERE patient_key = 'c'")
    assert set(_counts(fresh_url)) == {"a", "b2"}

    command.downgrade(alembic_config(fresh_url), "0014_h12nextday")
    _run(fresh_url, "", [{"id": "o7", "k": "a", "t": "2026-11-30 08:00:00"}])  # no trigger left behind
    upgrade(fresh_url)
    assert _counts(fresh_url)["a"] == (4, "2026-11-30 08:00:00")
