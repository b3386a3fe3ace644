"""SQLite: a batch's write transaction begun as soon as the database's one write lock is free.

SQLite lets one writer at a time; a writer that finds the lock taken waits in SQLite's busy handler, which sleeps in
growing steps (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms …) and tries again after each, so it learns the lock
is free up to a step late: with two workers writing lists, a writer queued behind the other's transaction waited
3–21 ms (median, instrumented served runs, docs/performance.md h11spread) while the lock stood free. Here the
batch's ``BEGIN IMMEDIATE`` is tried every half millisecond instead (each try a lock attempt in SQLite, ≈ 10 µs),
for no longer than the connection's busy timeout (30 s, ``store.database``), after which it fails as SQLite's
own wait would (``database is locked``: the app answers 503 with Retry-After).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy.orm import Session

from homediag.store.repositories.many import driver_errors

POLL_SECONDS = 0.0005
BEGIN = "BEGIN IMMEDIATE"


def begin_write(session: Session) -> None:
    """Begin ``session``'s write transaction on SQLite, taking the write lock (``BEGIN IMMEDIATE``) as soon as it
    is free; nothing when its connection is in a transaction already (a write began it) or on another engine."""
    if session.get_bind().dialect.name != "sqlite":
        return
    connection = session.connection()
    driver: Any = connection.connection.driver_connection
    if driver.in_transaction:
        return
    timeout_ms = driver.execute("PRAGMA busy_timeout").fetchone()[0]
    deadline = time.monotonic() + timeout_ms / 1000
    with driver_errors(connection, BEGIN, driver):
        driver.execute("PRAGMA busy_timeout = 0")  # a try that finds the lock taken fails at once
        try:
            while True:
                try:
                    driver.execute(BEGIN)
                    return
                except sqlite3.OperationalError as exc:
                    if not _locked(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(POLL_SECONDS)
        finally:
            driver.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")


def _locked(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF == sqlite3.SQLITE_BUSY if code is not None else "locked" in str(exc)
