"""An API token is read from the store on every request (``users.authenticate``, one Core statement): a token
revoked or expired by anything that writes the store (another worker, the command line, a database
administrator) is refused on the very next request, and a token that is valid again is accepted again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine, update

from homediag.clock import utcnow
from homediag.store.models import User


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
