"""Many rows inserted by the driver itself, in the session's transaction: on SQLite the ``sqlite3`` cursor's own
``executemany`` of the statement SQLAlchemy compiled, each row a tuple of parameters.

What this saves, against ``session.execute(insert(table), rows)``: SQLAlchemy's execution machinery for each row
(a parameter dict built per row by ``construct_params``, then turned into the positional tuple; the result set),
which for a list of 100 envelopes (200 Observations, 100 uploads, 100 audit records, the kept rows) was ≈ 20 ms of
a list's CPU on SQLite, more than the driver's own work (docs/performance.md, issue 11, h11sqlite). The statement
is still SQLAlchemy's (compiled once for the dialect), every value a bound parameter, each value through its
column type's bind processing for the dialect first (a ``DateTime`` as SQLAlchemy's SQLite text, a JSON column's
serialiser, a blob as ``sqlite3.Binary``), so the rows stored are the ones the ``INSERT`` through SQLAlchemy stores.
A failure is raised as SQLAlchemy raises a statement's (``driver_errors``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


@cache
def processors(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[Callable[[Any], Any] | None, ...]:
    """Each column's bind processor for ``dialect`` (None: the value is bound as it is)."""
    found = []
    for c in columns:
        impl = table.c[c].type.dialect_impl(dialect)
        process = impl.bind_processor(dialect)
        if process is not None and type(impl) is sqlite.DATETIME and impl._storage_format == _SQLITE_DATETIME:
            process = _sqlite_datetime(process)
        elif process is not None and isinstance(impl, JSON) and dialect.name == "sqlite":
            process = _json_none_once(process)
        found.append(process)
    return tuple(found)


def processed(
    table: Table, columns: tuple[str, ...], dialect: Dialect, rows: Sequence[Sequence[Any]], raw: frozenset[str]
) -> Sequence[Sequence[Any]]:
    """``rows`` (values in ``columns``' order) with each value through its column's bind processor for ``dialect``
    (``processors``), except the columns in ``raw``; ``rows`` itself when no column needs processing."""
    processing = [
        (i, p)
        for i, (c, p) in enumerate(zip(columns, processors(table, columns, dialect), strict=True))
        if p is not None and c not in raw
    ]
    if not processing:
        return rows
    values: list[Sequence[Any]] = []
    for row in rows:
        row = list(row)
        for i, process in processing:
            row[i] = process(row[i])
        values.append(row)
    return values


_SQLITE_DATETIME = sqlite.DATETIME._storage_format  # SQLAlchemy's default: "YYYY-MM-DD HH:MM:SS.ffffff"


def _sqlite_datetime(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLAlchemy's SQLite ``DATETIME`` text of a ``datetime`` (its wall-clock fields, the offset left out, as
    SQLAlchemy's format leaves it out) written by ``isoformat`` in C rather than by a ``%`` format of seven fields;
    anything else (None, a date, a subclass) through SQLAlchemy's own."""

    def fast(value: Any) -> Any:
        if value.__class__ is datetime:
            return value.isoformat(" ", "microseconds")[:26]
        return process(value)

    return fast


def _json_none_once(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLite: a JSON column's bind processing, with None's text (``null``, or None for a column storing SQL NULL)
    made once: each upload's ``issues`` is None, which the serialiser (``fhirjson.dumps``) writes by its slow
    path (docs/performance.md, h11sqlite)."""
    none = process(None)

    def once(value: Any) -> Any:
        return none if value is None else process(value)

    return once


@contextmanager
def driver_errors(connection: Connection, statement: str, driver: Any) -> Iterator[None]:
    """Raise a driver's failure inside the block as SQLAlchemy raises a statement's (``DBAPIError.instance``: e.g.
    an ``IntegrityError``, an ``OperationalError`` for a database gone away or locked); a dropped connection is
    invalidated, never used again."""
    dialect = connection.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as exc:
        disconnect = dialect.is_disconnect(exc, driver, None)
        if disconnect:
            connection.invalidate(exc)
        raise DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error, disconnect) from exc


@cache
def _insert(table: Table, columns: tuple[str, ...], dialect: Dialect, do_nothing: bool) -> str:
    """The ``INSERT`` of ``columns`` (positional parameters in that order) as SQLAlchemy compiles it for ``dialect``."""
    statement = sqlite.insert(table).values({c: bindparam(c) for c in columns})
    if do_nothing:
        statement = statement.on_conflict_do_nothing()
    compiled = statement.compile(dialect=dialect)
    if tuple(compiled.positiontup or ()) != columns:
        raise AssertionError(f"{table.name}: parameters compiled as {compiled.positiontup}, not {columns}")
    return compiled.string


def insert_rows(
    session: Session,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    *,
    raw: frozenset[str] = frozenset(),
    on_conflict_do_nothing: bool = False,
) -> None:
    """SQLite: insert ``rows`` (values in ``columns``' order) into ``table``, one executemany of the driver. A
    column in ``raw`` is given as the value to store (e.g. a JSON document as the text the engine's serialiser
    wrote), without its type's processing. ``on_conflict_do_nothing``: a row whose key is there already is skipped."""
    connection = session.connection()
    dialect = connection.dialect
    statement = _insert(table, columns, dialect, on_conflict_do_nothing)
    values = processed(table, columns, dialect, rows, raw)
    driver = connection.connection.driver_connection
    with driver_errors(connection, statement, driver):
        cursor = driver.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(statement, values)
        finally:
            cursor.close()
