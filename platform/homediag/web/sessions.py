"""Web sessions: who is signed in to the web app, and one-time sign-in links (the demo's, and ``homediag users
signin-link``'s on a server without OpenID Connect).

A session is a random token in a cookie (``HttpOnly``, ``SameSite=Lax``, ``Secure`` unless the
deployment says otherwise); the store keeps its SHA-256 with the person it signs in, as the same
``Principal`` an API token or an OpenID Connect token gives. A session ends at sign-out or after
``HOMEDIAG_WEB_IDLE_MINUTES`` without a request, and at the latest after ``MAX_HOURS``. Each session
has its CSRF token; every form carries it and every POST is checked against it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from sqlalchemy import select

from homediag import audit
from homediag.clock import utcnow
from homediag.errors import Forbidden, Unauthenticated
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.users import Principal

COOKIE = "hd_session"
ANON_CSRF_COOKIE = "hd_csrf"  # a form before sign-in (the language switch) is checked by double submit
MAX_HOURS = 12
LINK_MINUTES = 10
LINK_PREFIX = "/app/signin/link/"
WEB_ROLES = ("clinician", "admin")  # the people the web app serves so far


class SignInRequired(Unauthenticated):
    """No (live) web session: the web app answers with the sign-in page."""


@dataclass(frozen=True)
class WebSession:
    principal: Principal
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(rt: Runtime, principal: Principal) -> str:
    """A new session for ``principal``; returns the cookie's token (its only copy in clear)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with rt.sessions.begin() as session:
        session.add(
            m.WebSession(
                id_hash=_hash(token),
                user_id=principal.id,
                name=principal.name[:200],
                role=principal.role,
                organisation=principal.organisation,
                csrf=secrets.token_urlsafe(24),
                created_at=now,
                last_seen=now,
            )
        )
    return token


def current_session(request: Request, rt: Runtime) -> WebSession | None:
    """The live session of this request (its last-seen time moved on), or None."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    now = utcnow()
    idle = timedelta(minutes=rt.settings.web_idle_minutes)
    with rt.sessions.begin() as session:
        row = session.get(m.WebSession, _hash(token))
        if row is None or row.ended_at is not None:
            return None
        if now - row.last_seen > idle or now - row.created_at > timedelta(hours=MAX_HOURS):
            row.ended_at = now
            return None
        if not row.user_id.startswith("oidc:"):  # an API user revoked since signing in is out at once
            user = session.get(m.User, row.user_id)
            if user is None or user.revoked_at is not None:
                row.ended_at = now
                return None
        row.last_seen = now
        return WebSession(Principal(row.user_id, row.name, row.role, row.organisation), row.csrf)


def principal_of_request(request: Request, rt: Runtime) -> Principal:
    """The signed-in person (for ``api.policy.enforce`` on web routes); SignInRequired without a session."""
    found = getattr(request.state, "web_session", None) or current_session(request, rt)
    if found is None:
        raise SignInRequired("sign in to use the web app")
    request.state.web_session = found
    return found.principal


def end_session(request: Request, rt: Runtime) -> None:
    token = request.cookies.get(COOKIE)
    if not token:
        return
    with rt.sessions.begin() as session:
        row = session.get(m.WebSession, _hash(token))
        if row is not None and row.ended_at is None:
            row.ended_at = utcnow()


def set_cookie(response: Response, rt: Runtime, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/app",
        httponly=True,
        samesite="lax",
        secure=rt.settings.web_secure_cookies,
    )


def csrf_token(request: Request) -> str:
    """The token this request's forms carry: the session's, or before sign-in the double-submit cookie's."""
    found: WebSession | None = getattr(request.state, "web_session", None)
    if found is not None:
        return found.csrf
    token = request.cookies.get(ANON_CSRF_COOKIE) or getattr(request.state, "new_anon_csrf", None)
    if not token:
        token = secrets.token_urlsafe(24)
        request.state.new_anon_csrf = token  # set on the response by the page renderer
    return str(token)


def check_csrf(request: Request, rt: Runtime, sent: str | None) -> None:
    """Refuse a form post whose CSRF token is not this session's (or, before sign-in, the cookie's)."""
    found = getattr(request.state, "web_session", None) or current_session(request, rt)
    expected = found.csrf if found is not None else request.cookies.get(ANON_CSRF_COOKIE)
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise Forbidden("the form's security token is missing or out of date; reload the page and try again")


# -- one-time sign-in links (the demo; a server without OpenID Connect) --------------------------------
def issue_signin_link(rt: Runtime, user_id: str, minutes: int = LINK_MINUTES, actor: Principal | None = None) -> str:
    """A one-time link that signs ``user_id`` in, valid ``minutes``: its path relative to the base URL. Issued by
    ``actor`` (``homediag users signin-link``), it is recorded in the audit chain as ``signin-link`` (never the
    link itself)."""
    if not 1 <= minutes <= MAX_HOURS * 60:  # no longer than the session it starts may last
        raise ValueError(f"a sign-in link is valid for 1 to {MAX_HOURS * 60} minutes, not {minutes}")
    token = secrets.token_urlsafe(32)
    with rt.sessions.begin() as session:
        user = session.get(m.User, user_id)
        if user is None or user.role not in WEB_ROLES:
            raise ValueError(f"no user {user_id!r} who may sign in to the web app ({', '.join(WEB_ROLES)})")
        if user.revoked_at is not None:
            raise ValueError(f"user {user_id!r} is revoked: a sign-in link would not sign them in")
        session.add(
            m.WebSigninLink(token_hash=_hash(token), user_id=user_id, expires_at=utcnow() + timedelta(minutes=minutes))
        )
        if actor is not None:
            entry = audit.Entry(actor.id, actor.role, "signin-link", "done", entity=f"user/{user_id}")
            audit.append(session, rt.keys, [entry])
    return LINK_PREFIX + token


def redeem_signin_link(rt: Runtime, token: str) -> Principal:
    """The person a sign-in link names; the link is used up. Unauthenticated when unknown, used or expired."""
    now = utcnow()
    with rt.sessions.begin() as session:
        link = session.get(m.WebSigninLink, _hash(token))
        if link is None or link.used_at is not None or link.expires_at <= now:
            raise Unauthenticated("this sign-in link is unknown, already used or expired; ask for a new one")
        link.used_at = now
        user = session.execute(select(m.User).where(m.User.id == link.user_id)).scalar_one_or_none()
        if user is None or user.revoked_at is not None or user.role not in WEB_ROLES:
            raise Unauthenticated("the user of this sign-in link may no longer sign in")
        return Principal(user.id, user.name, user.role, user.organisation)
