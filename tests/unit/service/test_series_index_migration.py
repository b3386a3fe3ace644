"""Migration 0016 on SQLite and PostgreSQL: the series index ends in ``id``, so a search page's (date, id) order,
newest first or oldest first, is read from the index without a sort; a store that holds rows (in monthly
partitions and the default one on PostgreSQL) is upgraded, its rows found in that order, and it goes down."""

from __future__ import annotations

import re
from datetime import date

from alembic import command
from sqlalchemy import create_engine, text

from homediag.store.database import alembic_config, upgrade

_INSERT = text(
    "INSERT INTO observation (id, patient_key, code, category, codes, effective_start, effective_end, status, dedup,"
    " resource, received_at) VALUES (:id, :k, :c, 'vital-signs', 'x|c', :t, :t, 'final', :id, '{}', :t)"
)
_PAGE = "SELECT id FROM observation WHERE patient_key = 'a' AND code = 'bp' ORDER BY effective_start {0}, id {0}"


def _rows() -> list[dict[str, str]]:
    month = date.today().replace(day=1).isoformat()
    times = [f"{month} 08:00:00", f"{month} 08:00:00", f"{month} 09:30:00", "2001-02-03 04:05:06"]  # one tie; one old
    rows = [{"id": f"o{n}", "k": "a", "c": "bp", "t": t} for n, t in enumerate(times)]
    rows += [{"id": "p0", "k": "a", "c": "pulse", "t": times[0]}, {"id": "q0", "k": "b", "c": "bp", "t": times[0]}]
    return rows


def _sorts(url: str, direction: str) -> tuple[bool, list[str]]:
    """Whether the page statement sorts (the index does not give its order) and the ids it returns."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            query = _PAGE.format(direction)
            if conn.dialect.name == "postgresql":
                # a handful of rows: make every other way than an index in order cost the planner all it can
                conn.execute(text("SET LOCAL enable_seqscan = off"))
                conn.execute(text("SET LOCAL enable_bitmapscan = off"))
                conn.execute(text("SET LOCAL enable_sort = off"))
                conn.execute(text("SET LOCAL enable_incremental_sort = off"))
                nodes = [r[0].strip().removeprefix("->").strip() for r in conn.execute(text("EXPLAIN " + query))]
                sorts = any(re.match(r"(Incremental )?Sort +\(cost", n) for n in nodes)  # a node, not a Sort Key
            else:
                plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + query)))
                sorts = "TEMP B-TREE" in plan
            return sorts, [r[0] for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def test_pages_come_in_index_order_after_the_upgrade_of_a_store_with_rows(fresh_url: str) -> None:
    upgrade(fresh_url, "0015_h12marks")
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(_INSERT, _rows())
    engine.dispose()
    newest_first = ["o2", "o1", "o0", "o3"]
    assert _sorts(fresh_url, "DESC") == (True, newest_first)  # before: the page order needed a sort

    upgrade(fresh_url)
    assert _sorts(fresh_url, "DESC") == (False, newest_first)
    assert _sorts(fresh_url, "ASC") == (False, newest_first[::-1])  # the index walked backwards

    command.downgrade(alembic_config(fresh_url), "0015_h12marks")
    assert _sorts(fresh_url, "DESC") == (True, newest_first)
    upgrade(fresh_url)
    assert _sorts(fresh_url, "DESC") == (False, newest_first)
