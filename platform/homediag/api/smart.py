"""SMART on FHIR discovery (``/.well-known/smart-configuration``, at the server root and under the FHIR
base): the configured OpenID Connect issuer's endpoints, so that a SMART client (fhirclient) finds where
to sign in. The endpoints are the settings ``HOMEDIAG_OIDC_AUTHORIZATION_ENDPOINT`` and
``HOMEDIAG_OIDC_TOKEN_ENDPOINT``, else read once from the issuer's OpenID Connect discovery document.
Without an issuer there is no SMART sign-in: 404."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends

from homediag.errors import NotFound, Unavailable
from homediag.runtime import Runtime

from .deps import RuntimeDep
from .policy import PUBLIC, Caller, enforce
from .priority import ReadRoute
from .responses import JsonResponse

# GETs on the read threads (api/priority.py)
router = APIRouter(tags=["smart"], route_class=ReadRoute)
Public = Annotated[Caller, Depends(enforce(PUBLIC))]

_discovered: dict[str, dict[str, Any]] = {}


def _openid_configuration(issuer: str) -> dict[str, Any]:
    if issuer not in _discovered:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = httpx.get(url, timeout=5)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"the OpenID Connect issuer's discovery document could not be read ({exc})") from None
        if not isinstance(document, dict):
            raise Unavailable("the OpenID Connect issuer's discovery document is not a JSON object")
        _discovered[issuer] = document
    return _discovered[issuer]


def smart_configuration(rt: Runtime) -> dict[str, Any] | None:
    """The SMART configuration of this server, or None when no OpenID Connect issuer is configured."""
    s = rt.settings
    if not s.oidc_issuer:
        return None
    authorize, token = s.oidc_authorization_endpoint, s.oidc_token_endpoint
    document: dict[str, Any] = {}
    if not (authorize and token):
        document = _openid_configuration(s.oidc_issuer)
        authorize = authorize or document.get("authorization_endpoint")
        token = token or document.get("token_endpoint")
    if not (authorize and token):
        raise Unavailable("the OpenID Connect issuer names no authorization or token endpoint")
    config: dict[str, Any] = {
        "issuer": s.oidc_issuer,
        "authorization_endpoint": authorize,
        "token_endpoint": token,
        "grant_types_supported": ["authorization_code"],
        "capabilities": ["launch-standalone", "client-public", "client-confidential-symmetric", "sso-openid-connect"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "fhirUser", "user/Observation.read", "user/Patient.read"],
        "response_types_supported": ["code"],
    }
    if s.oidc_jwks_url:
        config["jwks_uri"] = s.oidc_jwks_url
    for key in ("revocation_endpoint", "introspection_endpoint", "userinfo_endpoint"):
        if key in document:
            config[key] = document[key]
    return config


def _answer(rt: Runtime) -> JsonResponse:
    config = smart_configuration(rt)
    if config is None:
        raise NotFound("no OpenID Connect issuer is configured (HOMEDIAG_OIDC_ISSUER): SMART sign-in is not offered")
    return JsonResponse(config)


@router.get("/.well-known/smart-configuration", summary="SMART on FHIR discovery (no token needed)")
def smart_root(rt: RuntimeDep, _caller: Public) -> JsonResponse:
    return _answer(rt)


@router.get("/fhir/.well-known/smart-configuration", summary="SMART on FHIR discovery under the FHIR base")
def smart_fhir(rt: RuntimeDep, _caller: Public) -> JsonResponse:
    return _answer(rt)
