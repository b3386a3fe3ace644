"""SQLite: what a commit wrote reaches the database file itself soon after, copied by a thread of the process
(``store/wal_checkpoints.py``), not by the commit, and not only when a later commit crosses SQLite's threshold."""

from __future__ import annotations

import sqlite3
import time

from sqlalchemy import text

from homediag.store import wal_checkpoints
from homediag.store.database import make_engine


def _rows_in_the_file_alone(path: str) -> int:
    """The rows of ``t`` the database file holds, its write-ahead log ignored (``immutable``)."""
    connection = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return connection.execute("SELECT count(*) FROM t").fetchone()[0]
    except sqlite3.OperationalError:  # the table itself is still only in the log
        return 0
    finally:
        connection.close()


def test_a_commit_reaches_the_database_file_without_another_commit(tmp_path):
    path = str(tmp_path / "store.sqlite3")
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x BLOB)"))
        for _ in range(500):
            connection.execute(text("INSERT INTO t VALUES (randomblob(1000))"))
    deadline = time.monotonic() + 10
    while _rows_in_the_file_alone(path) < 500 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _rows_in_the_file_alone(path) == 500  # 500 pages: below SQLite's own threshold of 1,000
    engine.dispose()


def test_the_commits_own_checkpoint_is_only_a_backstop(tmp_path):
    path = str(tmp_path / "store.sqlite3")
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        pages = connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
    assert pages == wal_checkpoints.BACKSTOP_PAGES > 1000
    engine.dispose()


def test_a_checkpoint_never_makes_a_removed_store_again(tmp_path):
    path = tmp_path / "gone.sqlite3"
    assert wal_checkpoints.checkpoint(str(path)) is None
    assert not path.exists()
