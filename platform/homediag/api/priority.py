"""Read requests on threads of lower CPU priority, so that a gateway's ingest gets the cores first.

A vendor's back-fill is throughput work: every millisecond it waits costs it rate. A clinician's search is
interactive, but on a machine that is not saturated a lower priority costs it nothing: Linux only weighs priorities
when threads wait for a core. So the read routes (searches, reads, the web app's pages) run their blocking work on a
pool of their own whose threads raise their nice value (``read_nice``) when they start; ingest and everything else
stays on the default thread pool at the server's own priority.

Why a pool of its own: an unprivileged thread may raise its nice value but never lower it again, so a thread of the
default pool (anyio's, shared by every route) can never be lowered. Why threads, not processes: a server worker
serves both kinds of request on one event loop. Linux keeps a nice value per thread
(``setpriority(PRIO_PROCESS, <thread id>)``), which is what makes this work inside one process.

``read_threads`` bounds how many reads of a process run at once (the rest wait on the event loop, taking no core);
while a gateway's write runs in the process (``run_ingest``), only ``reads_beside_ingest`` of them run (``Turns``).
0 read threads turns the pool off: reads run on the default pool as every other route. Measured in
docs/performance.md (issue 11, h11prio).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)


def _lower(nice: int) -> None:
    """A read thread's start: its nice value raised by ``nice`` (Linux: per thread; elsewhere nothing)."""
    if nice <= 0 or not sys.platform.startswith("linux"):  # elsewhere a thread id is no process id to setpriority
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # a platform without per-thread priorities: the reads run, only not lowered
        log.warning("read threads keep their priority: %s", exc)


class Turns:
    """While an ingest runs in this process, at most ``beside`` reads run beside it; the others wait on a condition
    (holding no interpreter lock) until the ingest ends or a read finishes, or ``wait_max`` seconds at most.

    The nice value decides who gets a core, not who gets the interpreter: Python hands its lock to a waiting thread
    every 5 ms (``sys.getswitchinterval``) whatever the threads' priorities, so an ingest sharing its process with
    four running reads had about a fifth of it while a core was free for each."""

    def __init__(self, beside: int, wait_max: float = 0.25) -> None:
        self.beside, self.wait_max = beside, wait_max
        self._changed = threading.Condition()
        self._ingests = self._reads = self._waiting = 0

    @property
    def waiting(self) -> int:
        """Reads waiting for their turn now."""
        return self._waiting

    @contextmanager
    def ingest(self) -> Iterator[None]:
        with self._changed:
            self._ingests += 1
        try:
            yield
        finally:
            with self._changed:
                self._ingests -= 1
                self._changed.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._changed:
            self._waiting += 1
            deadline = time.monotonic() + self.wait_max
            while self._ingests and self._reads >= self.beside:
                left = deadline - time.monotonic()
                if left <= 0:  # a back-fill of list after list never holds a read back longer than this
                    break
                self._changed.wait(left)
            self._waiting -= 1
            self._reads += 1
        try:
            yield
        finally:
            with self._changed:
                self._reads -= 1
                self._changed.notify_all()


class ReadPool:
    """``threads`` threads whose nice value is raised by ``nice`` at their start; ``beside`` of them at most run
    while an ingest runs in the process."""

    def __init__(self, nice: int, threads: int, beside: int, wait_max: float = 0.25) -> None:
        self.nice, self.threads = nice, threads
        self.turns = Turns(beside, wait_max)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="homediag-read", initializer=_lower,
                                            initargs=(nice,))  # fmt: skip

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on a read thread, in this task's context (as ``run_in_threadpool`` does), when
        its turn comes."""

        def in_turn() -> T:
            with self.turns.read():
                return fn(*args, **kwargs)

        call = functools.partial(contextvars.copy_context().run, in_turn)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_pool: ReadPool | None = None
_lock = threading.Lock()


def configure(nice: int, threads: int, beside: int, wait_max: float = 0.25) -> ReadPool | None:
    """The process's read pool for these settings (made once; made again only when they change). None: no pool."""
    global _pool
    with _lock:
        wanted = (nice, threads, beside, wait_max)
        if _pool is not None and (_pool.nice, _pool.threads, _pool.turns.beside, _pool.turns.wait_max) != wanted:
            _pool.close()
            _pool = None
        if _pool is None and threads > 0:
            _pool = ReadPool(nice, threads, beside, wait_max)
        return _pool


def pool() -> ReadPool | None:
    """The process's read pool (None: reads run on the default pool)."""
    return _pool


def _ingesting(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` as a gateway's write: while it runs, the read pool lets at most ``beside`` reads of
    this process run."""
    reads = _pool
    if reads is None:
        return fn(*args, **kwargs)
    with reads.turns.ingest():
        return fn(*args, **kwargs)


async def run_ingest(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A gateway's write on the default thread pool, at the server's priority (``_ingesting``)."""
    return await run_in_threadpool(_ingesting, fn, *args, **kwargs)


_LISTS_ON_THE_LOOP = [False]


def lists_on_the_loop() -> None:
    """This process is one of several workers (``server.worker_app``): from now on a gateway's list runs on the
    event loop's own thread (``run_list``)."""
    _LISTS_ON_THE_LOOP[0] = True


async def run_list(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A gateway's list of envelopes (a back-fill's unit of work): as ``run_ingest``, but in one of several worker
    processes on the event loop's own thread, so that the worker accepts no connection until the list is written
    and the kernel hands new ones to a free worker, as a pre-fork server's busy worker does.

    Why: the workers share one listening socket, and an event loop that is free while its process writes a list on a
    thread won most races for new connections (16 of 20 connections made one after another went to one of two idle
    workers), so a second gateway's list mostly landed in the busy worker, where it waits for the first
    (``ingest.grouped``: one batch at a time per process) while the other worker idles. Two gateways' lists of 100:
    PostgreSQL 4,344–4,762 Observations/s against 2,261–3,553, SQLite 3,983–4,196 against 3,267–3,296
    (docs/performance.md, session 12). The price: while a list is written (~50 ms for 100 envelopes, at most
    ``max_envelopes_per_list``), the other requests on that worker's connections wait for it; single envelopes, which
    group commit gathers from several requests of one process, stay on threads. One worker alone never does this:
    no other would take the connections."""
    if not _LISTS_ON_THE_LOOP[0]:
        return await run_ingest(fn, *args, **kwargs)
    return _ingesting(fn, *args, **kwargs)


async def run_read(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn`` on the read pool when there is one, else on the default thread pool."""
    reads = _pool
    if reads is None:
        return await run_in_threadpool(fn, *args, **kwargs)
    return await reads.run(fn, *args, **kwargs)


def read_route(endpoint: Callable[P, T]) -> Callable[P, Coroutine[Any, Any, T]]:
    """A plain ``def`` route run on the read pool: FastAPI sees the same parameters (``functools.wraps`` keeps the
    signature and the module whose names resolve its annotations) and awaits the pool instead of its own."""

    @functools.wraps(endpoint)
    async def on_read_pool(*args: P.args, **kwargs: P.kwargs) -> T:
        return await run_read(endpoint, *args, **kwargs)

    on_read_pool.read_route = True  # type: ignore[attr-defined]
    return on_read_pool


class ReadRoute(APIRoute):
    """A router's ``route_class``: a route that only reads (GET, HEAD) and whose endpoint is a plain ``def`` runs it
    on the read pool; every other route as FastAPI runs it (on the default pool, or on the event loop)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {str(m).upper() for m in kwargs.get("methods") or ("GET",)}
        if methods <= {"GET", "HEAD"} and not inspect.iscoroutinefunction(endpoint):
            endpoint = read_route(endpoint)
        super().__init__(path, endpoint, **kwargs)
