"""Signing in to the web app through the hospital's OpenID Connect provider (a local one): the
authorization-code flow with PKCE, and what must not sign anyone in."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient
from oidc_issuer import Provider, configure, running_provider
from web_support import web  # noqa: F401 - a fixture

from homediag import care
from homediag.runtime import Runtime

ADMIN = care.Principal("test-admin", "test admin", "admin", None)


@pytest.fixture
def provider(web: TestClient, runtime: Runtime, tokens) -> Iterator[Provider]:  # type: ignore[no-untyped-def]
    with running_provider() as found:
        configure(runtime, found)
        with runtime.sessions.begin() as session:  # the person is on the test clinician's team
            care.add_member(session, runtime.keys, ADMIN, tokens.team, f"oidc:{found.person['sub']}")
        yield found


def _to_provider(web: TestClient) -> tuple[str, dict[str, str]]:
    started = web.get("/app/signin/oidc?next=/app/worklist", follow_redirects=False)
    assert started.status_code == 303
    location = started.headers["location"]
    return location, {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def test_a_person_signs_in_with_code_and_pkce_and_lands_where_they_were_going(
    web: TestClient, provider: Provider
) -> None:
    location, asked = _to_provider(web)
    assert location.startswith(provider.base + "/authorize?")
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["state"] and asked["nonce"] and asked["client_id"] == "homediag-web"
    back = httpx.get(location, follow_redirects=False).headers["location"]  # the provider signs the person in
    callback = urlparse(back)
    signed_in = web.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/app/worklist"
    assert provider.token_requests[0]["code_verifier"]  # the verifier went to the token endpoint only
    assert provider.token_requests[0]["code_verifier"] not in location
    page = web.get("/app/worklist")
    assert page.status_code == 200 and "Sygeplejerske Syntetisk" in page.text


def test_an_answer_with_another_state_or_a_replayed_code_signs_no_one_in(web: TestClient, provider: Provider) -> None:
    location, _asked = _to_provider(web)
    back = urlparse(httpx.get(location, follow_redirects=False).headers["location"])
    code = parse_qs(back.query)["code"][0]
    forged = web.get(f"{back.path}?code={code}&state=someone-elses", follow_redirects=False)
    assert forged.status_code == 401 and "does not belong to this sign-in" in forged.text
    assert web.get("/app/worklist", follow_redirects=False).status_code == 303


def test_a_person_with_a_role_the_web_app_does_not_serve_is_refused(web: TestClient, provider: Provider) -> None:
    provider.person = {**provider.person, "homediag_role": "evaluator"}
    location, _asked = _to_provider(web)
    back = urlparse(httpx.get(location, follow_redirects=False).headers["location"])
    refused = web.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert refused.status_code == 403
    assert web.get("/app/", follow_redirects=False).status_code == 303
