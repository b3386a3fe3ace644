"""Issue 9 faults: the database unreachable at start-up (serve refuses, clearly) and mid-request (503
with Retry-After, so the gateway sends again and nothing is lost); readiness; files created 0600."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from homediag.api.app import create_app
from homediag.keys import KeyRing
from homediag.runtime import Runtime
from homediag.settings import Settings
from homediag.store import models as m
from homediag.store.database import make_engine, session_factory
from homediag.synthetic import cuff_payload, envelope, synthetic_patients

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/homediag"


def _runtime_over(url: str, **engine_kwargs) -> Runtime:
    keys = KeyRing.generate()
    settings = Settings(database_url=url, keys_json=keys.to_json(), _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(url, **engine_kwargs)
    return Runtime(settings, keys, engine, session_factory(engine))


def test_serve_refuses_to_start_when_the_database_cannot_be_reached(tmp_path):
    env = {
        **os.environ,
        "HOMEDIAG_DATABASE_URL": UNREACHABLE,
        "HOMEDIAG_KEYS_JSON": KeyRing.generate().to_json(),
        "HOMEDIAG_PORT": "1",  # never reached: it must fail before it listens
    }
    done = subprocess.run(
        [sys.executable, "-m", "homediag.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "cannot serve" in done.stderr and "127.0.0.1:1" in done.stderr and "cannot be reached" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_its_database_the_app_is_live_but_not_ready_and_answers_503_not_500():
    rt = _runtime_over(UNREACHABLE)
    with TestClient(create_app(rt)) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert "cannot be reached" in ready.json()["issue"][0]["diagnostics"]
        for method, path in (("GET", "/fhir/Observation"), ("POST", "/ingest"), ("GET", "/fhir/Patient/x")):
            response = client.request(method, path, headers={"Authorization": "Bearer hd_some-token"}, content=b"{}")
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] and response.json()["resourceType"] == "OperationOutcome"
    rt.close()


def test_ready_when_the_database_answers(client):
    assert client.get("/health/ready").json() == {"status": "ready"}


@contextmanager
def _write_lock(database_url: str) -> Iterator[None]:
    """Another session holds the upload table (PostgreSQL) or the database (SQLite) for writing."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(url.database or "", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        engine = create_engine(database_url)
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE upload IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                conn.rollback()
        engine.dispose()


def test_a_database_error_mid_request_is_a_503_with_retry_after_and_the_resend_is_stored_once(
    runtime, tokens, pilot, database_url
):
    [person] = synthetic_patients(1, seed=503)
    pilot.consent(pilot.enrol(person.cpr))
    taken = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=1)
    sent = envelope(person, cuff_payload(random.Random(3), taken), datetime.now(UTC))
    # the same database, with a short wait for locks: a write that cannot get its lock fails fast
    if make_url(database_url).get_backend_name() == "sqlite":
        impatient = make_engine(database_url, connect_args={"check_same_thread": False, "timeout": 0.3})
    else:
        impatient = make_engine(database_url, connect_args={"options": "-c lock_timeout=300"})
    rt = Runtime(runtime.settings, runtime.keys, impatient, session_factory(impatient))
    with TestClient(create_app(rt)) as client:
        with _write_lock(database_url):
            response = client.post("/ingest", json=sent, headers=tokens.auth("gateway"))
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert "send it again" in response.json()["issue"][0]["diagnostics"]
        again = client.post("/ingest", json=sent, headers=tokens.auth("gateway"))
        assert again.status_code == 201, again.text
        assert client.post("/ingest", json=sent, headers=tokens.auth("gateway")).json()["outcome"] == "duplicate"
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(m.Observation)) == len(again.json()["observations"])
    rt.close()


def test_the_sqlite_database_is_created_readable_by_its_owner_only(tmp_path: Path):
    from homediag.store.database import upgrade

    old = os.umask(0o022)
    try:
        for name, make in (("served.sqlite3", make_engine), ("upgraded.sqlite3", None)):
            url = f"sqlite:///{tmp_path / name}"
            if make is None:
                upgrade(url)
            else:
                engine = make(url)
                with engine.begin() as conn:
                    conn.execute(text("CREATE TABLE t (x INTEGER)"))
                engine.dispose()
            for path in tmp_path.glob(f"{name}*"):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))
    finally:
        os.umask(old)


def test_pooled_connections_dropped_by_the_database_are_replaced_without_failing_the_next_request(
    client, tokens, runtime
):  # type: ignore[no-untyped-def]
    """The pool pings no connection at checkout: a restart of PostgreSQL (every session of the database ended) is
    found by the next request's token read, which is made again on a new connection; the requests after it too."""
    if runtime.engine.dialect.name != "postgresql":
        return  # SQLite has no server to drop a connection
    auth = tokens.auth("clinician")
    for _ in range(3):
        assert client.get("/fhir/Observation", headers=auth).status_code == 200
    other = create_engine(runtime.settings.database_url)
    try:
        with other.connect() as conn:
            ended = conn.execute(
                text(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where datname = current_database() and pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        other.dispose()
    assert ended >= 1  # the runtime's pooled connections
    for _ in range(3):
        answered = client.get("/fhir/Observation", headers=auth)
        assert answered.status_code == 200, answered.text
