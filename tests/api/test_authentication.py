"""An API token is read from the store on every request (``users.authenticate``, one Core statement): a token
revoked or expired by anything that writes the store (another worker, the command line, a database
administrator) is refused on the very next request, and a token that is valid again is accepted again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine, update

from homediag.clock import utcnow
from homediag.store.database import make_engine, session_factory
from homediag.store.models import User
from homediag.users import authenticate_now, create_user


def _elsewhere(runtime, **values) -> None:  # type: ignore[no-untyped-def]
    """Change the clinician's row through a connection of another engine, as another process would."""
    other = create_engine(runtime.settings.database_url)
    try:
        with other.begin() as conn:
            conn.execute(update(User).where(User.role == "clinician").values(**values))
    finally:
        other.dispose()


def test_a_token_revoked_elsewhere_is_refused_on_the_next_request(client, tokens, runtime) -> None:  # type: ignore[no-untyped-def]
    auth = tokens.auth("clinician")
    for _ in range(3):  # the token has been used: nothing of it may outlive a revocation
        assert client.get("/fhir/Observation", headers=auth).status_code == 200
    _elsewhere(runtime, revoked_at=utcnow())
    refused = client.get("/fhir/Observation", headers=auth)
    assert refused.status_code == 401
    assert "unknown, expired or revoked" in refused.text
    assert client.get("/fhir/Observation", headers=tokens.auth("evaluator")).status_code == 200  # others unaffected


def test_a_token_that_expires_between_requests_is_refused_and_accepted_once_extended(client, tokens, runtime) -> None:  # type: ignore[no-untyped-def]
    auth = tokens.auth("clinician")
    _elsewhere(runtime, expires_at=utcnow() + timedelta(hours=1))
    assert client.get("/fhir/Observation", headers=auth).status_code == 200
    _elsewhere(runtime, expires_at=utcnow() - timedelta(seconds=1))
    assert client.get("/fhir/Observation", headers=auth).status_code == 401
    _elsewhere(runtime, expires_at=None)
    assert client.get("/fhir/Observation", headers=auth).status_code == 200


def test_the_token_read_outside_a_transaction_leaves_the_next_users_of_its_connection_a_transaction(
    runtime,
) -> None:  # type: ignore[no-untyped-def]
    """The token is read in autocommit (one statement, no BEGIN or ROLLBACK): the connection goes back to the pool
    transactional, so a write on it that is rolled back is not kept (one pooled connection: the same one)."""
    engine = make_engine(runtime.settings.database_url, pool_size=1, max_overflow=0)
    try:
        with session_factory(engine).begin() as session:
            user, token = create_user(session, name="a clinician", role="clinician")
        assert authenticate_now(engine, token) is not None
        with session_factory(engine)() as session:
            session.execute(update(User).where(User.id == user.id).values(revoked_at=utcnow()))
            session.rollback()
        assert authenticate_now(engine, token) is not None  # the rolled-back revocation was not kept
    finally:
        engine.dispose()
