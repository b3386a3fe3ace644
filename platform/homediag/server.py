"""Serving the app with uvicorn."""

from __future__ import annotations

import gc
import logging

from fastapi import FastAPI


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run ``app``. The objects made at start-up are frozen out of the garbage collector's full
    passes: without that, those passes over the loaded app set the search p95 (docs/performance.md)."""
    import uvicorn

    from .identity import NoCprInLogs

    for name in ("uvicorn.access", "uvicorn.error"):  # a CPR typed into a URL is never logged in clear
        logging.getLogger(name).addFilter(NoCprInLogs())
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="info")
