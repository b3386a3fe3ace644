"""Route policies: every route of the app declares who may call it and what it reads, in one place.

A route takes its caller from ``enforce(POLICY)``, the one dependency that authenticates (API token or
OpenID Connect), checks the role against the policy, checks the stated purpose of use
(``X-Purpose-Of-Use``) and hands the route a ``Caller`` whose ``access`` (``homediag.access``) is the
only way to read patient data: it decides, narrows in SQL, masks for the reader's pseudonym domain and
audits. ``check_policies`` walks every route of an app and refuses to start one where a route has no
policy (or two); the app calls it at creation, and a test shows it catches a route added without one.
The only routes without a policy are FastAPI's own documentation pages (``EXEMPT``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute, Mount, Route

from homediag.access import ROLE_PURPOSES, AccessService
from homediag.errors import Forbidden, Unauthenticated
from homediag.keys import KeyRing
from homediag.oidc import OidcError, looks_like_jwt
from homediag.runtime import Runtime
from homediag.users import ROLES, Principal, authenticate_now

P = ParamSpec("P")
T = TypeVar("T")

# FastAPI's own pages: the OpenAPI document and its viewers (they show no data).
EXEMPT = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


@dataclass(frozen=True)
class Policy:
    """Who may call a route (``roles``; none: no token needed) and what of patient data it reads."""

    name: str
    roles: tuple[str, ...]
    reads: str
    via: str = "bearer"  # how the caller authenticates: a bearer token (API), or a web session cookie ("session")

    @property
    def public(self) -> bool:
        return not self.roles


PUBLIC = Policy("public", (), "nothing: the capability statement and the published profiles")
ANY_USER = Policy("any-user", ROLES, "nothing: tools that check what the caller sends ($validate)")
CLINICAL_READ = Policy("clinical-read", ("clinician", "evaluator", "vendor"), "Observations, through the access layer")
PATIENT_READ = Policy(
    "patient-read", ("clinician", "evaluator", "vendor", "admin"), "a Patient, through the access layer"
)
DEVICE_READ = Policy("device-read", ("clinician", "admin"), "a Device, through the access layer")
ADMIN_READ = Policy(
    "admin-read", ("admin",), "consents, the audit log, care teams and gateways, through the access layer (audited)"
)
ADMIN_WRITE = Policy(
    "admin-write", ("admin",), "nothing: enrolment, consents, care teams, gateways and users (audited writes)"
)
GATEWAY_WRITE = Policy("gateway-write", ("gateway",), "only its own uploads' read-back, through the access layer")
VENDOR_TOOLS = Policy("vendor-tools", ("vendor", "admin"), "the upload log, through the access layer")
EXPORT = Policy(
    "export", ("evaluator",), "Bulk Data exports of its own pseudonym domain, through the access layer (audited)"
)
EVALUATION_READ = Policy(
    "evaluation-read", ("evaluator",), "the evaluation export and metrics, through the access layer (audited)"
)
MONITORING_READ = Policy(
    "monitoring-read",
    ("clinician",),
    "triage, thresholds, plans and reviews of patients in care, through the access layer",
)
MONITORING_WRITE = Policy(
    "monitoring-write", ("clinician",), "thresholds, plans and acknowledgements of patients in care (decided, audited)"
)
# The web app (homediag.web): signed in with a session cookie, never a bearer token.
WEB_PUBLIC = Policy("web-public", (), "nothing: sign-in, sign-out, the language switch, static assets", via="session")
WEB_SIGNED_IN = Policy("web-signed-in", ("clinician", "admin"), "nothing: the start page of a signed-in person",
                       via="session")  # fmt: skip
WEB_CLINICIAN = Policy("web-clinician", ("clinician",), "the worklist and patient pages, through the access layer",
                       via="session")  # fmt: skip
WEB_CLINICIAN_WRITE = Policy("web-clinician-write", ("clinician",),
                             "acknowledgements and thresholds of patients in care, through the access layer (audited)",
                             via="session")  # fmt: skip
WEB_ADMIN = Policy("web-admin", ("admin",),
                   "enrolled patients, consents, care teams, gateways and users, through the access layer (audited)",
                   via="session")  # fmt: skip
WEB_ADMIN_WRITE = Policy("web-admin-write", ("admin",),
                         "nothing: enrolment, consents, care teams, gateways and users (CSRF-checked, audited writes)",
                         via="session")  # fmt: skip
POLICIES = (PUBLIC, ANY_USER, CLINICAL_READ, PATIENT_READ, DEVICE_READ, ADMIN_READ, ADMIN_WRITE, GATEWAY_WRITE,
            VENDOR_TOOLS, EXPORT, EVALUATION_READ, MONITORING_READ, MONITORING_WRITE, WEB_PUBLIC, WEB_SIGNED_IN,
            WEB_CLINICIAN, WEB_CLINICIAN_WRITE, WEB_ADMIN, WEB_ADMIN_WRITE)  # fmt: skip


@dataclass(frozen=True)
class Caller:
    """What a route gets from its policy: who calls (None on a public route), the purpose of use and
    re-identification reason they stated, and the access layer to read through."""

    policy: Policy
    principal: Principal | None
    purpose: str | None
    reason: str | None
    access: AccessService

    @property
    def user(self) -> Principal:
        """The authenticated caller (every non-public route has one)."""
        if self.principal is None:
            raise Unauthenticated("an Authorization: Bearer <token> header is required")
        return self.principal

    def change(
        self, action: Callable[Concatenate[Session, KeyRing, Principal, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """An audited change (``homediag.care``, ``homediag.users``) in its own transaction, made by this caller:
        the administration API and the admin pages make their changes this one way."""
        rt = self.access.rt
        with rt.sessions.begin() as session:
            return action(session, rt.keys, self.user, *args, **kwargs)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def authenticate_request(request: Request, rt: Runtime) -> Principal:
    """The caller of a request: an OpenID Connect ID/access token or an API token (Bearer)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("an Authorization: Bearer <token> header is required")
    token = token.strip()
    if rt.oidc is not None and looks_like_jwt(token):
        try:
            return rt.oidc.principal(token)
        except OidcError as exc:
            raise Unauthenticated(str(exc)) from None
    principal = authenticate_now(rt.engine, token)  # one statement, no transaction (this runs on every request)
    if principal is None:
        raise Unauthenticated("the bearer token is unknown, expired or revoked")
    return principal


def enforce(policy: Policy) -> Callable[[Request], Caller]:
    """The dependency that applies ``policy`` to a request."""

    def dependency(request: Request) -> Caller:
        return caller_of(policy, request)

    dependency.policy = policy  # type: ignore[attr-defined]
    return dependency


def caller_of(policy: Policy, request: Request) -> Caller:
    """``policy`` applied to ``request``: its caller, or Unauthenticated / Forbidden. Blocking (the token's
    read): called in a worker thread (``enforce`` as a plain ``def`` dependency, or ``Deferred.principal``)."""
    rt = _runtime(request)
    access = AccessService(rt)
    if policy.public:
        return Caller(policy, None, None, None, access)
    if policy.via == "session":
        from homediag.web.sessions import principal_of_request  # the web app's session cookie

        principal = principal_of_request(request, rt)
    else:
        principal = authenticate_request(request, rt)
    if principal.role not in policy.roles:
        raise Forbidden(f"the role '{principal.role}' may not do this (allowed: {', '.join(policy.roles)})")
    purpose = request.headers.get("x-purpose-of-use", "").strip() or None
    if principal.role in ROLE_PURPOSES:
        access.view(principal, purpose)  # a purpose the role may not state is refused here (403)
    elif purpose is not None:
        raise Forbidden(f"the role '{principal.role}' acts under no purpose of use; leave X-Purpose-Of-Use out")
    reason = request.headers.get("x-reidentification-reason", "").strip()[:200] or None
    return Caller(policy, principal, purpose, reason, access)


def _policies(dependant: Dependant) -> Iterator[Policy]:
    for dep in dependant.dependencies:
        policy = getattr(dep.call, "policy", None)
        if isinstance(policy, Policy):
            yield policy
        yield from _policies(dep)


def route_policy(route: APIRoute | RouteContext) -> Policy | None:
    """The policy a route declares (None: none, or more than one)."""
    found = list(_policies(route.dependant))
    return found[0] if len(found) == 1 else None


def _routes(app: FastAPI) -> Iterator[RouteContext]:
    """Every route of the app with its full path, routers included (FastAPI includes them lazily)."""
    yield from iter_route_contexts(app.routes)


def _fingerprint(routes: Iterable[BaseRoute], keep: list[object]) -> tuple[object, ...]:
    """What decides ``unguarded_routes``: each route's path, methods, endpoint and declared dependencies, and each
    included router's prefix and dependencies, by identity (``keep`` holds the objects, so no id is reused)."""
    parts: list[object] = []
    for route in routes:
        router, include = getattr(route, "original_router", None), getattr(route, "include_context", None)
        if router is not None and include is not None:  # FastAPI's lazily included router
            deps = [d.dependency for d in include.dependencies]
            keep += [router, *deps]
            parts.append(("include", id(router), include.prefix, *map(id, deps), _fingerprint(router.routes, keep)))
        elif isinstance(route, APIRoute):
            deps = [d.dependency for d in route.dependencies]
            keep += [route, route.endpoint, *deps]
            parts.append(("api", id(route), id(route.endpoint), route.path, sorted(route.methods), *map(id, deps)))
        else:  # a plain route or a mount: only its kind and path matter
            parts.append((type(route).__name__, getattr(route, "path", None)))
    return tuple(parts)


_CHECKED: dict[str, tuple[list[object], list[str]]] = {}
"""``unguarded_routes`` by the fingerprint of the routes it walked: walking builds every route's dependencies
(about 70 ms for the app, which each test's app paid again). A handful: the app, and a test's altered copies."""


def unguarded_routes(app: FastAPI) -> list[str]:
    """Every route of ``app`` without exactly one declared policy, as 'METHODS path'."""
    keep: list[object] = []
    key = repr(_fingerprint(app.routes, keep))
    if (known := _CHECKED.get(key)) is not None:
        return list(known[1])
    missing = _unguarded(app)
    if len(_CHECKED) >= 8:
        _CHECKED.clear()
    _CHECKED[key] = (keep, missing)
    return list(missing)


def _unguarded(app: FastAPI) -> list[str]:
    missing: list[str] = []
    for ctx in _routes(app):
        route = ctx.original_route
        if isinstance(route, APIRoute):
            if route_policy(ctx) is None:
                missing.append(f"{','.join(sorted(ctx.methods or ()))} {ctx.path}")
        elif isinstance(route, Route | Mount) and ctx.path not in EXEMPT:
            missing.append(f"{type(route).__name__} {ctx.path}")
    return missing


def check_policies(app: FastAPI) -> None:
    """Refuse an app in which a route has no declared policy."""
    missing = unguarded_routes(app)
    if missing:
        raise RuntimeError(
            "every route declares its access policy (homediag.api.policy.enforce); without one: " + "; ".join(missing)
        )


def policy_table(app: FastAPI) -> list[tuple[str, str, str]]:
    """(methods, path, policy name) for every API route: the table docs/architecture.md shows."""
    rows = []
    for ctx in _routes(app):
        if isinstance(ctx.original_route, APIRoute) and (policy := route_policy(ctx)) is not None:
            rows.append((",".join(sorted(ctx.methods or ())), str(ctx.path), policy.name))
    return rows


def principal(policy: Policy) -> Callable[..., Principal]:
    """A dependency giving the authenticated principal under ``policy``, for routes that read nothing
    (gateway writes): ``Annotated[Principal, Depends(principal(GATEWAY_WRITE))]``."""
    enforced = enforce(policy)

    def dependency(caller: Caller = Depends(enforced)) -> Principal:  # a default: annotations are strings here
        return caller.user

    return dependency


@dataclass(frozen=True)
class Deferred:
    """A route's policy, applied by the route itself in the worker thread that does its blocking work: the token's
    read and the route's service share one thread hop (a plain ``def`` dependency is a hop of its own, on every
    request). Routes that read the body and hand it to a service in a thread (the gateways' writes) take it."""

    policy: Policy
    request: Request

    def principal(self) -> Principal:
        """The authenticated caller under the policy (Unauthenticated / Forbidden otherwise). Blocking."""
        return self.caller().user

    def caller(self) -> Caller:
        """The route's ``Caller`` under the policy, as ``enforce`` gives it (Unauthenticated / Forbidden otherwise).
        Blocking."""
        return caller_of(self.policy, self.request)


def deferred(policy: Policy) -> Callable[[Request], Awaitable[Deferred]]:
    """A dependency declaring ``policy`` whose check the route makes in its worker thread (``Deferred.principal``),
    before any of its work. A request without a bearer token is refused at once, on the event loop."""

    async def dependency(request: Request) -> Deferred:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if policy.via == "bearer" and (scheme.lower() != "bearer" or not token.strip()):
            raise Unauthenticated("an Authorization: Bearer <token> header is required")
        return Deferred(policy, request)

    dependency.policy = policy  # type: ignore[attr-defined]
    return dependency
