"""Serving the app with uvicorn: one process, or several workers (each its own runtime and connection pool)."""

from __future__ import annotations

import logging

from fastapi import FastAPI


def partitions_ahead(app: FastAPI) -> None:
    """PostgreSQL: the months ahead of ``observation`` made at start-up (``homediag.store.partitions``)."""
    from homediag.store.partitions import ensure_observation_partitions

    with app.state.runtime.engine.begin() as conn:
        ensure_observation_partitions(conn)


def _no_cprs_in_logs() -> None:
    """A CPR typed into a URL is never logged in clear (uvicorn's access and error logs)."""
    from .identity import NoCprInLogs

    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(NoCprInLogs())


def _freeze_startup_heap() -> None:
    """The objects made at start-up are frozen out of the garbage collector's full passes: without that,
    those passes over the loaded app set the search p95 (docs/performance.md); what is imported later is
    frozen as it comes (``homediag.heap``)."""
    from homediag import heap

    heap.freeze_startup()
    heap.keep_frozen()


def check_startup() -> None:
    """What ``homediag serve --workers N`` runs in a child before the workers start: the app built once from
    the settings (a bad setting or key file fails here, with its message) and PostgreSQL's months ahead made."""
    from homediag.api.app import create_app

    app = create_app()
    partitions_ahead(app)
    app.state.runtime.close()


def worker_app() -> FastAPI:
    """The app of one of several worker processes (``uvicorn --factory``): built from the HOMEDIAG_* settings,
    start-up heap frozen; a gateway's list holds the worker's event loop while it is written, so that new
    connections go to a free worker (``api.priority.run_list``)."""
    from homediag.api import priority
    from homediag.api.app import create_app

    app = create_app()
    priority.lists_on_the_loop()
    _no_cprs_in_logs()
    _freeze_startup_heap()
    return app


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run ``app`` in this process."""
    import uvicorn

    partitions_ahead(app)
    _no_cprs_in_logs()
    _freeze_startup_heap()
    uvicorn.run(app, host=host, port=port, log_level="info")


def serve_workers(host: str, port: int, workers: int) -> None:
    """Run ``workers`` processes, each building its app from the settings (``worker_app``). For PostgreSQL: with
    SQLite, writers in several processes only queue on the database file's one lock.

    This process becomes uvicorn's supervisor by ``exec``: same pid, same environment (the HOMEDIAG_* settings
    the workers read), but none of the command line's imports (typer, pydantic's settings, SQLAlchemy), which
    the supervisor never uses: it only starts, watches and stops the workers (99 MB before, about 20 after)."""
    import os
    import sys

    # glibc's malloc makes an arena per thread up to 8 per core; the workers' thread pools then hold memory
    # in each (their PSS stayed 5-10 MB higher after a mixed load, docs/performance.md)
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    # what GET /ingest tells a gateway: as many lists at once as there are workers (unless the operator said)
    os.environ.setdefault("HOMEDIAG_INGEST_LISTS_AT_ONCE", str(workers))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(
        sys.executable,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "homediag.server:worker_app",
            "--factory",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "info",
        ],
    )
