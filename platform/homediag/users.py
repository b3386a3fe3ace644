"""Users, gateways and their API tokens.

A token is 32 random bytes, shown once when made; the store keeps only its SHA-256 (a fast hash
is right for a high-entropy random token, unlike a password).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import audit
from .clock import utcnow
from .keys import KeyRing
from .store.models import User

ROLES = ("clinician", "gateway", "admin", "evaluator", "vendor")
# The purpose of use each role acts under (HL7 v3-ActReason).
ROLE_PURPOSE = {"clinician": "TREAT", "evaluator": "HRESCH", "vendor": "HTEST", "gateway": None, "admin": None}
TOKEN_PREFIX = "hd_"


@dataclass(frozen=True)
class Principal:
    """Who is asking: the authenticated user, its role and the purpose of use it acts under."""

    id: str
    name: str
    role: str
    organisation: str | None

    @property
    def purpose(self) -> str | None:
        return ROLE_PURPOSE.get(self.role)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session, *, name: str, role: str, organisation: str | None = None, expires_at: datetime | None = None
) -> tuple[User, str]:
    """Make a user and return it with its token (the only time the token exists in clear)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = User(
        id=f"{role}-{secrets.token_hex(6)}",
        name=name,
        role=role,
        organisation=organisation,
        token_hash=hash_token(token),
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(user)
    session.flush()
    return user, token


# The one read of a token, built once: Core on a connection, no ORM object loaded (this runs on every request).
_BY_TOKEN = select(User.id, User.name, User.role, User.organisation, User.expires_at, User.revoked_at).where(
    User.token_hash == bindparam("token_hash")
)


def authenticate(db: Session | Connection, token: str) -> Principal | None:
    """The principal of an API token; None when the token is unknown, revoked or expired. Read from the store on
    every call, never remembered: a revocation (by any process: the CLI, another worker) holds from the next
    request on, and a worker cannot learn of one without reading the store."""
    connection = db.connection() if isinstance(db, Session) else db
    row = connection.execute(_BY_TOKEN, {"token_hash": hash_token(token)}).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return Principal(row.id, row.name, row.role, row.organisation)


def authenticate_now(engine: Engine, token: str) -> Principal | None:
    """``authenticate`` on a connection of ``engine`` outside any transaction: the token's one statement is one
    round trip (no BEGIN, no ROLLBACK; the pool checks no connection out with a ping: ``store.database``). A
    connection the database dropped (a restart) is found here, by the statement itself: the pool then replaces
    every connection older than the failure, and the read is made once more on a new one."""
    for attempt in (1, 2):
        try:
            with engine.connect() as connection:
                return authenticate(connection.execution_options(isolation_level="AUTOCOMMIT"), token)
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def revoke_user(session: Session, user_id: str) -> bool:
    """Revoke a token (effective on the next request); False when there is no such user."""
    user = session.get(User, user_id)
    if user is None:
        return False
    if user.revoked_at is None:
        user.revoked_at = utcnow()
    return True


@dataclass(frozen=True)
class UserSummary:
    id: str
    role: str
    organisation: str | None
    name: str
    state: str  # active | revoked | expired


def add_user(
    session: Session,
    keys: KeyRing,
    actor: Principal,
    *,
    name: str,
    role: str,
    organisation: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[User, str]:
    """``create_user`` by an administrator, recorded in the audit chain (never the token)."""
    user, token = create_user(session, name=name, role=role, organisation=organisation, expires_at=expires_at)
    audit.append(session, keys, [audit.Entry(actor.id, actor.role, "user-add", "done", entity=f"user/{user.id}")])
    return user, token


def revoke(session: Session, keys: KeyRing, actor: Principal, user_id: str) -> bool:
    """``revoke_user`` by an administrator, recorded in the audit chain."""
    if not revoke_user(session, user_id):
        return False
    audit.append(session, keys, [audit.Entry(actor.id, actor.role, "user-revoke", "done", entity=f"user/{user_id}")])
    return True


def list_users(session: Session) -> list[UserSummary]:
    now = utcnow()
    out = []
    for user in session.execute(select(User).order_by(User.created_at)).scalars():
        state = "revoked" if user.revoked_at else "expired" if user.expires_at and user.expires_at <= now else "active"
        out.append(UserSummary(user.id, user.role, user.organisation, user.name, state))
    return out
