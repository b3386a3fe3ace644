"""Engine, sessions and migrations for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from homediag.errors import Unavailable
from homediag.fhir_profiles import fhirjson

from . import wal_checkpoints

if TYPE_CHECKING:  # alembic (and mako) are imported by the commands that migrate, not by every server worker
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
POOL_RECYCLE_SECONDS = 1800
"""A pooled PostgreSQL connection older than this is replaced at checkout (no round trip): one idle that long may
have been cut by a firewall or an idle timeout. The pool does not ping a connection at each checkout (a round trip
per request); a connection the database dropped is found by the first statement sent on it, which fails with a
disconnect error: SQLAlchemy then replaces every pooled connection made before the failure, the request's token
read is made once more on a new connection (``users.authenticate_now``), and a write in flight answers 503 with
Retry-After (the gateway sends again; a reading sent twice is stored once)."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine whose JSON columns keep decimal precision, with SQLite set up for a server."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            _create_private(Path(database))
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    else:  # no pool_pre_ping (a round trip per checkout): see ``POOL_RECYCLE_SECONDS``
        kwargs.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
    engine = create_engine(url, json_serializer=fhirjson.dumps, json_deserializer=fhirjson.loads, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        if parsed.database and parsed.database != ":memory:":  # the log copied back after commits, off the request
            path = str(Path(parsed.database).resolve())
            event.listen(engine, "commit", lambda _connection: wal_checkpoints.after_commit(path))
    return engine


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600) before SQLite would create it with the
    umask's mode; its journal files take the same mode. An existing file is left as it is."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def check_reachable(engine: Engine) -> None:
    """Unavailable (503, Retry-After) unless the database answers a query; the text says which database."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise Unavailable(
            f"the database at {where} cannot be reached ({reason[0] if reason else type(exc).__name__})",
            code="transient",
        ) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={wal_checkpoints.BACKSTOP_PAGES}")  # a thread checkpoints: see there
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (``homediag db upgrade``)."""
    if make_url(url).get_backend_name() == "sqlite" and make_url(url).database:
        Path(make_url(url).database or "").parent.mkdir(parents=True, exist_ok=True)
        if make_url(url).database != ":memory:":
            _create_private(Path(make_url(url).database or ""))
    from alembic import command

    command.upgrade(alembic_config(url), revision)
