"""Throw-away databases for the tests and the benchmarks: made fresh, dropped after, even on failure."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text


def postgres_reachable(server: str) -> str | None:
    """None when the server at ``server`` (a URL without database) answers; else why not."""
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not reachable"
        return f"PostgreSQL not reachable at {server}: {exc.__class__.__name__}"
    finally:
        admin.dispose()
    return None


@contextmanager
def scratch_postgres_database(server: str, prefix: str) -> Iterator[str]:
    """A database ``<prefix>_<random>`` on ``server``, yielded as its URL and dropped at the end."""
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield f"{server}/{name}"
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
