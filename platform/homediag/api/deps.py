"""Dependencies declared once: the runtime, the caller, the base URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from homediag.oidc import OidcError, looks_like_jwt
from homediag.runtime import Runtime
from homediag.users import Principal, authenticate

from .responses import FhirError


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def get_principal(request: Request, rt: Annotated[Runtime, Depends(get_runtime)]) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise FhirError(401, "login", "an Authorization: Bearer <token> header is required")
    token = token.strip()
    if rt.oidc is not None and looks_like_jwt(token):
        try:
            return rt.oidc.principal(token)
        except OidcError as exc:
            raise FhirError(401, "login", str(exc)) from None
    with rt.sessions() as session:
        principal = authenticate(session, token)
    if principal is None:
        raise FhirError(401, "login", "the bearer token is unknown, expired or revoked")
    return principal


def require_role(*roles: str):  # type: ignore[no-untyped-def]
    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise FhirError(
                403, "forbidden", f"the role '{principal.role}' may not do this (allowed: {', '.join(roles)})"
            )
        return principal

    return check


def fhir_base(request: Request, rt: Annotated[Runtime, Depends(get_runtime)]) -> str:
    if rt.settings.public_base_url:
        return rt.settings.public_base_url.rstrip("/") + "/fhir"
    return str(request.base_url).rstrip("/") + "/fhir"


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
BaseDep = Annotated[str, Depends(fhir_base)]
