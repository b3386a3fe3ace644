"""People sign in with OpenID Connect: bearer ID/access tokens (JWTs) from the hospital's identity provider.

The issuer, the audience and the signing keys (a JWKS URL, or a JWKS file for a closed network) are
configured; tokens are validated with PyJWT (signature, ``iss``, ``aud``, ``exp``, ``nbf``). The role
comes from a configured claim; only people's roles may sign in this way: gateways and vendors use
opaque API tokens. Machine tokens and people's tokens never mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jwt

from .users import Principal

PERSON_ROLES = ("clinician", "evaluator", "admin")
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class OidcError(Exception):
    """A token that cannot be accepted; the message says why (never the token itself)."""


@dataclass
class OidcVerifier:
    """Checks people's tokens against the provider's published keys.

    The keys come through ``jwt.PyJWKClient``: the key set is cached (``cache_seconds``) and a token
    naming a key id the cache does not hold refreshes it at most once per ``refresh_cooldown`` seconds,
    so a stream of tokens with made-up key ids costs the provider one fetch, not one each. A key
    verifies only tokens of its own algorithm (an ES256 token against an RSA key is refused, 401)."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: Path | None = None
    role_claim: str = "homediag_role"
    organisation_claim: str = "organisation"
    cache_seconds: int = 300
    refresh_cooldown: float = 30.0

    def __post_init__(self) -> None:
        if self.jwks_file is not None:
            uri = self.jwks_file.resolve().as_uri()
        elif self.jwks_url is not None:
            uri = self.jwks_url
        else:
            raise OidcError("no JWKS configured (HOMEDIAG_OIDC_JWKS_URL or HOMEDIAG_OIDC_JWKS_FILE)")
        self.keys = jwt.PyJWKClient(
            uri,
            cache_jwk_set=True,
            lifespan=self.cache_seconds,
            timeout=5,
            cooldown_duration=self.refresh_cooldown,
        )

    def _key_for(self, token: str) -> jwt.PyJWK:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if kid is not None:
                return self.keys.get_signing_key(str(kid))
            keys = self.keys.get_signing_keys()
        except jwt.PyJWKClientConnectionError:
            raise OidcError("the identity provider's signing keys cannot be fetched just now") from None
        except jwt.PyJWKClientError as exc:
            raise OidcError(f"no signing key for this token at the identity provider ({exc})") from None
        if len(keys) != 1:
            raise OidcError("the token names no key id (kid) and the identity provider has several keys")
        return keys[0]

    def principal(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),  # a PyJWK: only its own algorithm verifies
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # a malformed token or key: refused, never a 500
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
