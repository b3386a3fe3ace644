"""PostgreSQL ``COPY … FROM STDIN`` of many rows into one table, in the session's transaction.

One statement for the server (its parse, plan and a partitioned table's routing paid once, not per row) and no
multi-row query text for the driver: psycopg parses a query with more than 50 parameters again on every call (it
caches only smaller ones), which for a list's 100 uploads (a ``VALUES`` of 1,700 parameters) was 10–25 ms of CPU
per request. Each value goes through its column type's bind processing for the dialect first (e.g. a JSON column's
serialiser, ``None`` as JSON ``null`` as an ``INSERT`` writes it), so the rows stored are the ones an ``INSERT``
of the same values stores. Failures are raised as SQLAlchemy raises a statement's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from . import many
from .many import driver_errors, processed


def copy_rows(
    session: Session,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    *,
    raw: frozenset[str] = frozenset(),
) -> None:
    """``COPY`` ``rows`` (values in ``columns``' order) into ``table``. A column in ``raw`` is given as the text to
    store (e.g. a JSON document already serialised by the engine's serialiser), without its type's processing."""
    connection = session.connection()
    values = processed(table, columns, connection.dialect, rows, raw)
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    driver = connection.connection.driver_connection
    with driver_errors(connection, statement, driver):
        with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in values:
                copy.write_row(row)


def bulk_rows(
    session: Session,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    *,
    raw: frozenset[str] = frozenset(),
) -> None:
    """Many rows into ``table`` in one statement of the driver: PostgreSQL's ``COPY`` (``copy_rows``), SQLite's
    executemany (``many.insert_rows``); ``columns`` and ``raw`` as for both."""
    if session.get_bind().dialect.name == "postgresql":
        copy_rows(session, table, columns, rows, raw=raw)
    else:
        many.insert_rows(session, table, columns, rows, raw=raw)
