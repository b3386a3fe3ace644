"""A server worker's long-lived heap kept out of the cyclic garbage collector's full passes.

At start the imported app is frozen (``gc.freeze``). Much is imported later, on first use: the web pages'
templates, Babel's catalogues, matplotlib for the first chart, lark for the first FHIRPath. Left tracked, those
modules' functions, cells and parse trees (about 110,000 objects after a first worklist and patient page) are
walked by every full collection, which then lands inside some later request: 87–150 ms in the PostgreSQL
worklist view of a next day (docs/performance.md, h11decide). A watcher thread freezes the heap again whenever
the process has imported more modules, a few times in a worker's life. Freezing walks nothing (it moves the
collector's lists) and frozen objects are still freed by their reference counts.
"""

from __future__ import annotations

import gc
import sys
import threading
import time

WATCH_EVERY = 2.0  # seconds between looks at ``sys.modules``

_watching = threading.Event()


def freeze_startup() -> None:
    """Collect once, then freeze what is left: the objects made by importing and building the app."""
    gc.collect()
    gc.freeze()


def freeze_if_imported(known: int) -> int:
    """Freeze the heap if modules were imported since ``known`` modules were; the count now."""
    now = len(sys.modules)
    if now != known:
        gc.freeze()
    return now


def keep_frozen(every: float = WATCH_EVERY) -> None:
    """Start the process's one watcher (a daemon thread; a second call does nothing)."""
    if _watching.is_set():
        return
    _watching.set()

    def watch() -> None:
        known = len(sys.modules)
        while True:
            time.sleep(every)
            known = freeze_if_imported(known)

    threading.Thread(target=watch, name="homediag-heap", daemon=True).start()
