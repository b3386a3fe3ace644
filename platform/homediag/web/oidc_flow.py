"""Signing in to the web app with the hospital's OpenID Connect provider: the authorization-code flow
with PKCE (S256), by Authlib.

The state, the nonce and the PKCE verifier travel in a short-lived cookie signed with a key derived
from the platform's keys (itsdangerous); the ID token that comes back is checked by the same
``OidcVerifier`` that checks bearer tokens on the API (signature from the provider's JWKS, ``iss``,
``aud``, ``exp``), so a person signed in here is the same ``Principal`` as with a token, and its nonce
must be the one sent.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeTimedSerializer

from homediag.errors import Unauthenticated, Unavailable
from homediag.oidc import OidcError
from homediag.runtime import Runtime
from homediag.users import Principal

STATE_COOKIE = "hd_oidc"
STATE_SECONDS = 600
CALLBACK = "/app/signin/callback"
_discovered: dict[str, tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Started:
    url: str  # where to send the browser (the provider's authorization endpoint)
    cookie: str  # the signed state cookie


def configured(rt: Runtime) -> bool:
    return rt.oidc is not None and bool(rt.settings.oidc_issuer)


def _serializer(rt: Runtime) -> URLSafeTimedSerializer:
    secret = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"homediag web oidc state").derive(
        rt.keys.pseudonym.secret
    )
    return URLSafeTimedSerializer(secret, salt="oidc-state")


def discovery(rt: Runtime) -> dict[str, Any]:
    """The provider's metadata (``/.well-known/openid-configuration``), kept for an hour."""
    url = (
        rt.settings.oidc_discovery_url or f"{str(rt.settings.oidc_issuer).rstrip('/')}/.well-known/openid-configuration"
    )
    with _lock:
        cached = _discovered.get(url)
        if cached is not None and time.monotonic() - cached[0] < 3600:
            return cached[1]
    try:
        response = httpx.get(url, timeout=5)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise Unavailable(f"the sign-in provider did not answer ({type(exc).__name__}); try again shortly") from None
    with _lock:
        _discovered[url] = (time.monotonic(), document)
    return document


def start(rt: Runtime, redirect_uri: str, next_path: str) -> Started:
    meta = discovery(rt)
    verifier = generate_token(64)
    state = generate_token(32)
    nonce = secrets.token_urlsafe(24)
    url = prepare_grant_uri(
        meta["authorization_endpoint"],
        rt.settings.oidc_client_id or rt.settings.oidc_audience,
        "code",
        redirect_uri=redirect_uri,
        scope="openid profile",
        state=state,
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    cookie = _serializer(rt).dumps({"state": state, "verifier": verifier, "nonce": nonce, "next": next_path})
    return Started(url, cookie)


def _fetch_token(rt: Runtime, endpoint: str, redirect_uri: str, code: str, verifier: str) -> dict[str, Any]:
    """The token request of the authorization-code grant (RFC 6749 4.1.3) with the PKCE verifier (RFC 7636)."""
    s = rt.settings
    client_id = s.oidc_client_id or s.oidc_audience
    extra = {} if s.oidc_client_secret else {"client_id": client_id}
    body = prepare_token_request(
        "authorization_code", redirect_uri=redirect_uri, code=code, code_verifier=verifier, **extra
    )
    auth = (str(client_id), s.oidc_client_secret) if s.oidc_client_secret else None
    response = httpx.post(
        endpoint,
        content=body,
        auth=auth,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        timeout=10,
    )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def finish(
    rt: Runtime, redirect_uri: str, cookie: str | None, code: str | None, state: str | None
) -> tuple[Principal, str]:
    """The person the provider signed in, and the path to go on to. Unauthenticated saying why not."""
    if not cookie:
        raise Unauthenticated("the sign-in took too long or was started elsewhere; start it again")
    try:
        saved = _serializer(rt).loads(cookie, max_age=STATE_SECONDS)
    except BadSignature:
        raise Unauthenticated("the sign-in took too long or was tampered with; start it again") from None
    if not code or not state or not secrets.compare_digest(str(saved.get("state")), state):
        raise Unauthenticated("the answer of the sign-in provider does not belong to this sign-in; start it again")
    meta = discovery(rt)
    try:
        token = _fetch_token(rt, meta["token_endpoint"], redirect_uri, code, str(saved["verifier"]))
    except (httpx.HTTPError, ValueError) as exc:
        raise Unauthenticated(f"the sign-in provider refused the code ({type(exc).__name__})") from None
    id_token = token.get("id_token")
    if not id_token or rt.oidc is None:
        raise Unauthenticated("the sign-in provider sent no ID token")
    try:
        principal = rt.oidc.principal(id_token)
    except OidcError as exc:
        raise Unauthenticated(str(exc)) from None
    claims = jwt.decode(id_token, options={"verify_signature": False})  # verified just above
    if not secrets.compare_digest(str(claims.get("nonce", "")), str(saved["nonce"])):
        raise Unauthenticated("the ID token's nonce is not this sign-in's")
    return principal, str(saved.get("next") or "/app/")
