"""SQLite: the write-ahead log copied back into the database file by a thread of the process, after the commit.

SQLite's own automatic checkpoint runs inside the ``COMMIT`` that takes the log past 1,000 pages, so the request
that commits waits for it: a list of 100 envelopes writes about that much, and nearly every list paid a checkpoint
(about a fifth of a served list's wall time). Here each process's commits on a SQLite file ask one background thread
for a passive checkpoint, at most every ``MIN_INTERVAL`` seconds per file (commits meanwhile are folded into the
next); the automatic checkpoint stays as a backstop at ``BACKSTOP_PAGES`` (``store.database``), should the thread
fall behind. A passive checkpoint never waits for readers or writers, and the log's frames are durable as before
(``synchronous=NORMAL``): only who copies them, and when, changes. Measured in docs/performance.md (issue 11).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

MIN_INTERVAL = 0.1
"""Seconds between two checkpoints of one file by this process (each ends with an fsync of the database file)."""
SETTLE = 0.005
"""Seconds the thread waits after an ask: the engine's ``commit`` event comes before the commit itself (a commit
still in flight is copied by the next checkpoint)."""
BACKSTOP_PAGES = 10_000
"""The log's size (pages) at which a commit still checkpoints itself (SQLite's ``wal_autocheckpoint``)."""

log = logging.getLogger(__name__)

_lock = threading.Lock()
_asked = threading.Event()
_pending: set[str] = set()  # files whose checkpoint was asked for
_last: dict[str, float] = {}  # file -> when this process last checkpointed it (the thread's own)
_thread: threading.Thread | None = None


def after_commit(path: str) -> None:
    """A commit on ``path``: a checkpoint of it is asked for (the thread started on the first ask)."""
    global _thread
    with _lock:
        _pending.add(path)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="homediag-wal-checkpoint", daemon=True)
            _thread.start()
    _asked.set()


def checkpoint(path: str) -> tuple[int, int, int] | None:
    """A passive checkpoint of ``path`` on a connection of its own: (busy, log frames, frames checkpointed), or None
    when the file cannot be opened or is locked by a checkpoint of another process (that one does the work). Opened
    read-write, never created: a file removed since its commit is not made again (with the umask's mode, not the
    store's 0600)."""
    try:
        uri = f"{Path(path).as_uri()}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row else None
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def _run() -> None:
    while True:
        _asked.wait()
        time.sleep(SETTLE)  # asked as the commit begins (SQLAlchemy's ``commit`` event): let it end
        _asked.clear()
        with _lock:
            due = sorted(_pending)
            _pending.clear()
        for path in due:
            wait = _last.get(path, 0.0) + MIN_INTERVAL - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                checkpoint(path)
            except Exception:  # noqa: BLE001 - a checkpoint left to the next commit or to SQLite's backstop
                log.warning("the WAL checkpoint of %s failed", path, exc_info=True)
            _last[path] = time.monotonic()
