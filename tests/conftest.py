"""Test fixtures: each run gets its own databases (a SQLite file and a PostgreSQL database), removed after; with
``-n 2`` (pytest-xdist) each worker process its own (under its temporary directory, named after its process id).

Tests that use ``runtime`` (or ``client``) run once per engine. PostgreSQL is the server at
``HOMEDIAG_TEST_POSTGRES`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432``); when it is
not reachable those runs are skipped, unless ``CI`` or ``HOMEDIAG_REQUIRE_POSTGRES`` is set, when they fail.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from homediag import care
from homediag.api.app import create_app
from homediag.keys import KeyRing
from homediag.runtime import Runtime
from homediag.settings import Settings
from homediag.store.database import make_engine, session_factory, upgrade
from homediag.store.models import Base
from homediag.store.scratch import postgres_reachable, scratch_postgres_database
from homediag.users import Principal, create_user

FIXTURES = Path(__file__).parent / "fixtures"
POSTGRES_SERVER = os.environ.get("HOMEDIAG_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")


def pytest_configure(config: pytest.Config) -> None:
    """The cyclic garbage collector tuned for a test run: Python's default (a young collection every 700 new
    objects) promotes each test's app, runtime and engine to the old generation, whose full collections then
    walk the whole heap (about a million objects once the app is imported) dozens of times; a fifth of a
    run's time went there. Collections every 10,000 objects let most of a test's objects die young."""
    gc.set_threshold(10_000, 10, 10)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (the platform, the test modules, their libraries) lives as long as the run:
    kept out of every later collection."""
    gc.collect()
    gc.freeze()


def _postgres_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("HOMEDIAG_REQUIRE_POSTGRES"))


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    problem = postgres_reachable(POSTGRES_SERVER)
    if problem is not None:
        if _postgres_required():
            pytest.fail(problem)
        pytest.skip(problem)
    with scratch_postgres_database(POSTGRES_SERVER, f"homediag_test_{os.getpid()}") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'homediag.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's own on each engine (for migrations run by the test itself),
    named after the test module on PostgreSQL and dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'upgrade.sqlite3'}"
        return
    request.getfixturevalue("postgresql_url")  # the server is there (or the test is skipped)
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with scratch_postgres_database(POSTGRES_SERVER, f"homediag_{module}") as url:
        yield url


_migrated: set[str] = set()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    if url not in _migrated:
        upgrade(url)  # the real migrations, as `homediag db upgrade` runs them
        _migrated.add(url)
    return url


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime over a migrated, empty database, with fresh keys, writing exports under the test's tmp dir."""
    keys = KeyRing.generate()
    settings = Settings(  # type: ignore[call-arg]
        database_url=database_url, keys_json=keys.to_json(), export_dir=tmp_path / "exports", _env_file=None
    )
    engine = make_engine(database_url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    rt = Runtime(settings, keys, engine, session_factory(engine))
    yield rt
    rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


@dataclass
class Tokens:
    admin: str
    clinician: str
    gateway: str
    evaluator: str
    ids: dict[str, str] = field(default_factory=dict)  # role -> user id
    team: str = ""  # the test clinician's care team

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


ADMIN = Principal("test-admin", "test admin", "admin", None)


@pytest.fixture
def tokens(runtime: Runtime) -> Tokens:
    """An admin, a clinician on a care team, a gateway that may use any device, and an evaluator of FIERS."""
    with runtime.sessions.begin() as session:
        users = {
            role: create_user(session, name=f"test {role}", role=role, organisation=organisation)
            for role, organisation in (("admin", None), ("clinician", None), ("gateway", None), ("evaluator", "FIERS"))
        }
        team = care.create_team(session, runtime.keys, ADMIN, "test team", runtime.settings.pilot)
        care.add_member(session, runtime.keys, ADMIN, team.id, users["clinician"][0].id)
        care.allow_device(session, runtime.keys, ADMIN, users["gateway"][0].id, care.ANY_DEVICE)
    return Tokens(
        **{role: token for role, (_, token) in users.items()},
        ids={role: user.id for role, (user, _) in users.items()},
        team=team.id,
    )


class Pilot:
    """Enrols synthetic patients (on the test care team and the test gateway) and records consents through the
    real API."""

    def __init__(self, client: TestClient, tokens: Tokens, runtime: Runtime) -> None:
        self.client = client
        self.tokens = tokens
        self.runtime = runtime

    def enrol(self, cpr: str, family: str = "Testesen", given: str = "Test") -> str:
        response = self.client.post(
            "/fhir/Patient",
            json={
                "resourceType": "Patient",
                "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": cpr}],
                "name": [{"family": family, "given": [given]}],
            },
            headers=self.tokens.auth("admin"),
        )
        assert response.status_code in (200, 201), response.text
        patient_id = str(response.json()["id"])
        self.admit(patient_id, team=self.tokens.team, gateway=self.tokens.ids["gateway"])
        return patient_id

    def admit(self, patient_id: str, *, team: str | None = None, gateway: str | None = None) -> None:
        """Put the patient in a care team's care and/or enrol it on a gateway."""
        with self.runtime.sessions.begin() as session:
            care.admit(session, self.runtime.keys, ADMIN, patient_id, team=team, gateway=gateway)

    def consent(
        self,
        patient_id: str,
        *,
        status: str = "active",
        purposes: tuple[str, ...] = ("TREAT",),
        start: date | datetime | None = None,
        end: date | datetime | None = None,
    ) -> dict[str, Any]:
        from homediag.consent import treatment_consent

        resource = treatment_consent(f"Patient/{patient_id}", purposes=purposes, status=status, start=start, end=end)
        response = self.client.post("/fhir/Consent", json=resource, headers=self.tokens.auth("admin"))
        assert response.status_code == 201, response.text
        return dict(response.json())

    def withdraw(self, consent: dict[str, Any]) -> dict[str, Any]:
        changed = {**consent, "status": "inactive"}
        response = self.client.put(f"/fhir/Consent/{consent['id']}", json=changed, headers=self.tokens.auth("admin"))
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def pilot(client: TestClient, tokens: Tokens, runtime: Runtime) -> Pilot:
    return Pilot(client, tokens, runtime)


@pytest.fixture
def live_server(runtime: Runtime) -> Iterator[str]:
    """The app over ``runtime`` served by uvicorn on a free localhost port; yields the base URL."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            pytest.fail("the live server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
