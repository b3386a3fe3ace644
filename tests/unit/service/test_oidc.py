"""OpenID Connect sign-in against a local test issuer: real RSA keys, a real JWKS served over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from homediag.api.app import create_app
from homediag.oidc import OidcVerifier
from homediag.runtime import Runtime

ISSUER = "https://idp.test.invalid/realms/nykobing"
AUDIENCE = "homediag"


class Issuer:
    """A test identity provider: signing keys, a JWKS document, tokens."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0  # JWKS documents served
        self.rotate()

    def rotate(self) -> str:
        kid = f"key-{len(self.keys) + 1}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str | None = None, **claims: Any) -> str:
        kid = kid or list(self.keys)[-1]
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "person-1",
            "name": "Dr. Syntetisk Sørensen",
            "iat": now,
            "exp": now + 300,
            "homediag_role": "clinician",
            **claims,
        }
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[tuple[Issuer, str]]:
    idp = Issuer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            idp.fetches += 1
            body = json.dumps(idp.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() returns once serve_forever notices it, at its next poll: poll often, not every 0.5 s (the default)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield idp, f"http://127.0.0.1:{server.server_address[1]}/jwks"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def oidc_client(runtime: Runtime, issuer: tuple[Issuer, str]) -> Iterator[TestClient]:
    runtime.oidc = OidcVerifier(ISSUER, AUDIENCE, jwks_url=issuer[1])
    with TestClient(create_app(runtime)) as client:
        yield client


def _search(client: TestClient, token: str) -> Any:
    return client.get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"})


def test_a_valid_token_from_the_identity_provider_signs_a_clinician_in(
    oidc_client: TestClient, issuer: tuple[Issuer, str], runtime: Runtime
) -> None:
    response = _search(oidc_client, issuer[0].token())
    assert response.status_code == 200
    from sqlalchemy import select

    from homediag.store.models import AuditEvent

    with runtime.sessions() as session:
        assert session.execute(select(AuditEvent.actor)).scalars().all() == ["oidc:person-1"]


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"aud": "someone-else"}, "Audience"),
        ({"iss": "https://evil.invalid"}, "issuer"),
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"homediag_role": "gateway"}, "no role a person may sign in with"),
        ({"homediag_role": None}, "no role"),
    ],
)
def test_tokens_that_must_not_sign_in_get_401_saying_why(
    oidc_client: TestClient, issuer: tuple[Issuer, str], claims: dict[str, Any], says: str
) -> None:
    response = _search(oidc_client, issuer[0].token(**claims))
    assert response.status_code == 401
    assert says in response.json()["issue"][0]["diagnostics"]


def test_a_token_signed_by_another_key_or_altered_is_refused(
    oidc_client: TestClient, issuer: tuple[Issuer, str]
) -> None:
    stranger = Issuer()
    assert _search(oidc_client, stranger.token(kid="key-1")).status_code == 401
    header, payload, signature = issuer[0].token().split(".")
    forged_payload = jwt.utils.base64url_encode(
        json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": 2**31, "homediag_role": "admin"}).encode()
    ).decode()
    assert _search(oidc_client, f"{header}.{forged_payload}.{signature}").status_code == 401


def test_keys_rotated_at_the_provider_are_picked_up(
    oidc_client: TestClient, issuer: tuple[Issuer, str], runtime: Runtime
) -> None:
    # once the refresh cool-down (30 s by default) has passed since the last fetch; here it is none
    runtime.oidc = OidcVerifier(ISSUER, AUDIENCE, jwks_url=issuer[1], refresh_cooldown=0)
    assert _search(oidc_client, issuer[0].token()).status_code == 200
    new_kid = issuer[0].rotate()
    assert _search(oidc_client, issuer[0].token(kid=new_kid)).status_code == 200


def test_api_tokens_still_work_beside_oidc(oidc_client: TestClient, tokens) -> None:  # type: ignore[no-untyped-def]
    assert oidc_client.get("/fhir/Observation", headers=tokens.auth("clinician")).status_code == 200


def test_unknown_key_ids_cost_the_provider_one_fetch_not_one_each(
    oidc_client: TestClient, issuer: tuple[Issuer, str]
) -> None:
    idp = issuer[0]
    assert _search(oidc_client, idp.token()).status_code == 200
    assert idp.fetches == 1
    stranger = Issuer()
    for n in range(20):
        stranger.keys[f"made-up-{n}"] = stranger.keys["key-1"]
        response = _search(oidc_client, stranger.token(kid=f"made-up-{n}"))
        assert response.status_code == 401
        assert "signing key" in response.json()["issue"][0]["diagnostics"]
    assert idp.fetches <= 2  # the cached set, refreshed at most once per cool-down
    assert _search(oidc_client, idp.token()).status_code == 200  # known keys keep working from the cache


def test_an_es256_token_against_the_providers_rsa_key_is_a_401_not_a_500(
    oidc_client: TestClient, issuer: tuple[Issuer, str]
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 300, "homediag_role": "admin"}
    for kid in ("key-1", None):
        headers = {"kid": kid} if kid else {}
        token = jwt.encode(claims, ec_key, algorithm="ES256", headers=headers)
        response = _search(oidc_client, token)
        assert response.status_code == 401, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
