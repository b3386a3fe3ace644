"""Rows kept beside what ingest stores (each reading's values, triage and shape: ``monitoring.persisted``), inserted
where not there yet, all tables in one statement on PostgreSQL.

``deferred(session)`` collects what ``persisted.insert_new`` would insert in ``session`` while it is open, and
inserts it all when it closes: on PostgreSQL one ``INSERT … SELECT … FROM json_array_elements(…) ON CONFLICT DO
NOTHING`` per table, the tables chained as data-modifying ``WITH`` clauses of one statement (one round trip, one
parse, whatever the number of rows or tables; a single envelope's three inserts were three round trips), each
table's rows one JSON parameter written by orjson (sent as text arrays, every quote of their JSON values was escaped
by psycopg in Python: 8 ms of a list of 100's CPU); on SQLite (in process: a statement costs no round trip) one
executemany of the driver per table (``many.insert_rows``). Each table's rows keep the order they were given in
(sorted by their keys by ``persisted``: two transactions writing overlapping rows wait, not deadlock).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import orjson
from sqlalchemy import String, Table, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from . import many

DEFERRED = "homediag.kept.deferred"
"""``session.info`` key: while set, ``persisted.insert_new`` adds its rows here (table -> rows) instead."""

Pending = dict[Table, list[dict[str, Any]]]


def defer(session: Session, table: Any, rows: list[dict[str, Any]]) -> bool:
    """Whether ``rows`` of ``table`` (a Table or a mapped class) were added to ``session``'s ``deferred`` block
    (False outside one: the caller inserts them itself)."""
    pending = session.info.get(DEFERRED)
    if pending is None:
        return False
    pending.setdefault(getattr(table, "__table__", table), []).extend(rows)
    return True


@contextmanager
def deferred(session: Session) -> Iterator[Pending]:
    """Collect the kept rows inserted in ``session`` in the block; insert them (``insert_new``) when it ends
    without an exception."""
    pending: Pending = {}
    outer = session.info.get(DEFERRED)
    session.info[DEFERRED] = pending
    try:
        yield pending
    finally:
        if outer is None:
            session.info.pop(DEFERRED, None)
        else:
            session.info[DEFERRED] = outer
    insert_new(session, pending)


def insert_new(session: Session, pending: Pending) -> None:
    """Insert each table's rows that are not there yet (another transaction may have written the same ones)."""
    tables = [(table, rows) for table, rows in pending.items() if rows]
    if not tables:
        return
    if session.get_bind().dialect.name == "postgresql" and all(_textual(t) for t, _ in tables):
        statement = _together(tuple((t, tuple(rows[0])) for t, rows in tables))
        params = {
            f"k{i}": orjson.dumps([[r[c] for c in rows[0]] for r in rows]).decode()
            for i, (_, rows) in enumerate(tables)
        }
        session.execute(statement, params)
        return
    if session.get_bind().dialect.name == "sqlite":
        for table, rows in tables:
            columns = tuple(rows[0])
            values = [[r[c] for c in columns] for r in rows]
            many.insert_rows(session, table, columns, values, on_conflict_do_nothing=True)
        return
    for table, rows in tables:
        session.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)


def _textual(table: Table) -> bool:
    return all(isinstance(c.type, String) for c in table.columns)  # Text is a String


@cache
def _together(shape: tuple[tuple[Table, tuple[str, ...]], ...]) -> Any:
    """The one statement for these tables and columns (built once: compiled once)."""
    parts = []
    for i, (table, columns) in enumerate(shape):
        # each row a JSON array of its values in ``columns``' order, read back by position, in the order given
        values = ", ".join(f"r.value->>{j}" for j in range(len(columns)))
        parts.append(
            f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {values}"
            f" FROM json_array_elements(CAST(:k{i} AS json)) WITH ORDINALITY AS r(value, n) ORDER BY r.n"
            " ON CONFLICT DO NOTHING"
        )
    *first, last = parts
    sql = ("WITH " + ", ".join(f"k{i} AS ({p})" for i, p in enumerate(first)) + " " if first else "") + last
    return text(sql).bindparams(*(bindparam(f"k{i}") for i in range(len(shape))))
