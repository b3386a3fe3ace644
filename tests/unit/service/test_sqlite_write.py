"""SQLite: a batch's write transaction begun as soon as the write lock is free (``ingest/sqlite_write.py``), and
still given up after the connection's busy timeout, as SQLite's own wait is (the app then answers 503)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from homediag.ingest import sqlite_write
from homediag.store.database import make_engine


def _engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    return engine, str(tmp_path / "w.db")


def _holder(path: str) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    return other


def test_the_write_begins_once_another_writer_commits(tmp_path):
    engine, path = _engine(tmp_path)
    other = _holder(path)
    threading.Timer(0.2, other.commit).start()
    with Session(engine) as session:
        sqlite_write.begin_write(session)
        session.execute(text("INSERT INTO t VALUES (2)"))
        session.commit()
        timeout = session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert timeout == 30_000  # the connection's own busy timeout is back
    with engine.connect() as connection:
        assert connection.execute(text("SELECT k FROM t ORDER BY k")).scalars().all() == [1, 2]


def test_the_wait_ends_with_the_busy_timeout(tmp_path):
    engine, path = _engine(tmp_path)
    other = _holder(path)
    try:
        with Session(engine) as session:
            session.connection().exec_driver_sql("PRAGMA busy_timeout = 300")
            started = time.monotonic()
            with pytest.raises(OperationalError, match="locked"):
                sqlite_write.begin_write(session)
            assert time.monotonic() - started >= 0.3
            session.rollback()
            assert session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar() == 300
    finally:
        other.rollback()
