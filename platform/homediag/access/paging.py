"""Stable search paging: a walk through a searchset is a snapshot.

The first page takes a high-water mark of the Observation table (what had been committed when the
walk began) and counts the matches under it; every later page is read under the same mark, by
keyset (the sort key plus the id of the last entry shown), so readings that arrive while a client
walks ``next`` links never duplicate or shift an entry and ``Bundle.total`` stays what page one said.

The high-water mark is engine-specific, because "committed before" is:

- PostgreSQL: the transaction snapshot (``pg_current_snapshot()``: xmin, xmax and the transactions in
  flight); each Observation row records the id of the transaction that wrote it (``observation.txn``,
  filled by the database), and a row belongs to the walk when that transaction was committed in the
  snapshot.
- SQLite: writers are serialised, so rowids are allocated in commit order and the largest rowid
  is the mark.

The paging state travels in the link as an opaque token (Fernet: AES-CBC with an HMAC, from the
``cryptography`` library) under a key derived from the pseudonym key: a client cannot read or
change it, and a token is bound to the reader that the walk began with.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import ColumnElement, and_, func, literal_column, or_, select
from sqlalchemy.orm import Session

from homediag.errors import BadRequest
from homediag.keys import KeyRing
from homediag.store import models as m

PAGE_PARAMETER = "_page"
_ROWID = literal_column("observation.rowid")
# a walk's link stays valid this long (seconds); a client that pauses longer starts again
PAGE_TTL = 24 * 3600


@dataclass
class Cursor:
    """Where a walk is: the query as first sent, its snapshot and total, and the edge of the page shown."""

    items: list[tuple[str, str]]
    snapshot: str
    total: int
    reader: str
    index: int = 0  # the page number (0: the first)
    after: tuple[str, str] | None = None  # (sort value, id) of the last entry of the previous page
    before: tuple[str, str] | None = None  # (sort value, id) of the first entry of the next page
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "q": self.items,
                "s": self.snapshot,
                "t": self.total,
                "r": self.reader,
                "i": self.index,
                "a": self.after,
                "b": self.before,
                "x": self.extra,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Cursor:
        d = json.loads(data)
        return cls(
            items=[(str(k), str(v)) for k, v in d["q"]],
            snapshot=str(d["s"]),
            total=int(d["t"]),
            reader=str(d["r"]),
            index=int(d["i"]),
            after=tuple(d["a"]) if d["a"] else None,  # type: ignore[arg-type]
            before=tuple(d["b"]) if d["b"] else None,  # type: ignore[arg-type]
            extra=dict(d.get("x") or {}),
        )


@lru_cache(maxsize=16)
def _fernet(secret: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"homediag search paging v1").derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def seal(keys: KeyRing, cursor: Cursor) -> str:
    return _fernet(keys.pseudonym.secret).encrypt(cursor.to_json()).decode()


def unseal(keys: KeyRing, token: str, reader: str) -> Cursor:
    """The cursor in a ``_page`` token, or a 400 saying it is not one (altered, expired, another reader's)."""
    try:
        cursor = Cursor.from_json(_fernet(keys.pseudonym.secret).decrypt(token.encode(), ttl=PAGE_TTL))
    except (InvalidToken, ValueError, KeyError, TypeError):
        raise BadRequest(
            f"{PAGE_PARAMETER}: not a page link of this server, or one older than {PAGE_TTL // 3600} hours; "
            "start the search again",
            PAGE_PARAMETER,
        ) from None
    if cursor.reader != reader:
        raise BadRequest(f"{PAGE_PARAMETER}: this page link belongs to another reader's search", PAGE_PARAMETER)
    return cursor


def mark(session: Session) -> ColumnElement[Any]:
    """The high-water mark as a column of a statement over the Observation table (evaluated once per statement:
    a scalar subquery), read back by ``snapshot_of``: the rows that statement sees are the rows ``within`` it."""
    if session.get_bind().dialect.name == "postgresql":
        return literal_column("(select 'pg:' || pg_current_snapshot()::text)")
    return literal_column("(select 'rowid:' || coalesce(max(rowid), 0) from observation)")


def snapshot_of(value: Any) -> str:
    """A snapshot (``within``'s argument) from a ``mark`` column's value."""
    return str(value)


def count_at_snapshot(session: Session, filters: list[ColumnElement[bool]]) -> tuple[int, str]:
    """(how many Observations match ``filters``, the high-water mark they were counted at), in one statement:
    the count and the mark read the same snapshot of the table (one statement sees one)."""
    stmt = select(func.count(), mark(session)).select_from(m.Observation).where(*filters)
    total, top = session.connection().execute(stmt).one()
    return int(total), snapshot_of(top)


def counted(filters: list[ColumnElement[bool]]) -> ColumnElement[Any]:
    """How many Observations match ``filters``, as a column of a statement (a scalar subquery, never correlated
    with the statement's own Observation table): the count beside a page, in that page's snapshot."""
    return select(func.count()).select_from(m.Observation).where(*filters).correlate(None).scalar_subquery()


def within(snapshot: str) -> ColumnElement[bool]:
    """Rows of the Observation table committed at the snapshot."""
    kind, _, mark = snapshot.partition(":")
    if kind == "rowid":
        return _ROWID <= int(mark)
    if kind == "pg":
        xmin, xmax, xip = mark.split(":")
        txn = m.Observation.txn
        in_flight = [int(x) for x in xip.split(",") if x]
        committed = and_(txn < int(xmax), txn.not_in(in_flight)) if in_flight else txn < int(xmax)
        return or_(txn.is_(None), txn < int(xmin), committed)
    raise BadRequest(f"{PAGE_PARAMETER}: unknown snapshot", PAGE_PARAMETER)
