"""A fresh, migrated database per run, and a Runtime over it built as tests/conftest.py does."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from homediag.keys import KeyRing
from homediag.runtime import Runtime
from homediag.settings import Settings
from homediag.store.database import make_engine, session_factory, upgrade
from homediag.store.scratch import scratch_postgres_database

POSTGRES_SERVER = os.environ.get("HOMEDIAG_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="homediag-bench-") as directory:
        yield f"sqlite:///{Path(directory) / 'homediag.sqlite3'}"


@contextmanager
def postgresql_database(server: str = POSTGRES_SERVER) -> Iterator[str]:
    """A database ``homediag_bench_<random>`` on ``server``, dropped at the end, even on failure."""
    with scratch_postgres_database(server, "homediag_bench") as url:
        yield url


@contextmanager
def fresh_database(engine: str) -> Iterator[str]:
    make = {"sqlite": sqlite_database, "postgresql": postgresql_database}[engine]
    with make() as url:
        upgrade(url)  # the real migrations
        yield url


@contextmanager
def kept_postgresql_database(server: str = POSTGRES_SERVER) -> Iterator[str]:
    """A migrated database ``homediag_bench_kept_<random>`` on ``server`` that is NOT dropped at the end (a big
    store measured again later, ``bench --scale ... --keep-store``); drop it by hand when done."""
    name = f"homediag_bench_kept_{secrets.token_hex(4)}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = f"{server}/{name}"
    upgrade(url)
    yield url


@contextmanager
def runtime(url: str, keys_json: str | None = None) -> Iterator[Runtime]:
    """A Runtime over ``url`` with fresh keys, or with ``keys_json`` (a kept store's)."""
    keys = KeyRing.generate() if keys_json is None else KeyRing.from_json(keys_json, "kept bench store")
    settings = Settings(database_url=url, keys_json=keys.to_json(), _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(url)
    rt = Runtime(settings, keys, engine, session_factory(engine))
    try:
        yield rt
    finally:
        rt.close()
