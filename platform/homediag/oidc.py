"""People sign in with OpenID Connect: bearer ID/access tokens (JWTs) from the hospital's identity provider.

The issuer, the audience and the signing keys (a JWKS URL, or a JWKS file for a closed network) are
configured; tokens are validated with PyJWT (signature, ``iss``, ``aud``, ``exp``, ``nbf``). The role
comes from a configured claim; only people's roles may sign in this way: gateways and vendors use
opaque API tokens. Machine tokens and people's tokens never mix.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from .users import Principal

PERSON_ROLES = ("clinician", "evaluator", "admin")
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class OidcError(Exception):
    """A token that cannot be accepted; the message says why (never the token itself)."""


@dataclass
class OidcVerifier:
    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: Path | None = None
    role_claim: str = "homediag_role"
    organisation_claim: str = "organisation"
    cache_seconds: int = 300

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: jwt.PyJWKSet | None = None
        self._fetched = 0.0

    def _jwks(self, refresh: bool = False) -> jwt.PyJWKSet:
        with self._lock:
            stale = time.monotonic() - self._fetched > self.cache_seconds
            if self._keys is None or stale or refresh:
                if self.jwks_file is not None:
                    data: Any = json.loads(self.jwks_file.read_text())
                elif self.jwks_url is not None:
                    response = httpx.get(self.jwks_url, timeout=5)
                    response.raise_for_status()
                    data = response.json()
                else:
                    raise OidcError("no JWKS configured (HOMEDIAG_OIDC_JWKS_URL or HOMEDIAG_OIDC_JWKS_FILE)")
                self._keys, self._fetched = jwt.PyJWKSet.from_dict(data), time.monotonic()
            return self._keys

    def _key_for(self, kid: str | None) -> Any:
        for refresh in (False, True):  # a new kid after the provider rotated its keys: fetch once more
            for key in self._jwks(refresh).keys:
                if kid is None or key.key_id == kid:
                    return key.key
        raise OidcError(f"no signing key {kid!r} at the identity provider")

    def principal(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self._key_for(header.get("kid")),
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"the token was refused: {exc}") from None
        role = claims.get(self.role_claim)
        if isinstance(role, list):
            role = next((r for r in role if r in PERSON_ROLES), None)
        if role not in PERSON_ROLES:
            raise OidcError(
                f"the token's {self.role_claim!r} claim names no role a person may sign in with"
                f" ({', '.join(PERSON_ROLES)})"
            )
        return Principal(
            id=f"oidc:{claims['sub']}",
            name=str(claims.get("name") or claims["sub"]),
            role=str(role),
            organisation=claims.get(self.organisation_claim),
        )


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("hd_")
