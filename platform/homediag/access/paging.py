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

The page itself is read here too (``page_rows``): keyset on (sort key, id) under the walk's mark; the first page,
its mark and its count in one statement (one statement sees one snapshot).

The paging state travels in the link as an opaque token (Fernet: AES-CBC with an HMAC, from the
``cryptography`` library) under a key derived from the pseudonym key: a client cannot read or
change it, and a token is bound to the reader that the walk began with.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import (
    ColumnElement,
    String,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from homediag.errors import BadRequest
from homediag.keys import KeyRing
from homediag.search_params import ObservationQuery
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


# -- the page statement: a page's rows, its snapshot mark and its count --------------------------
@dataclass
class Page:
    rows: list[Any]
    cursor: Cursor  # the walk, at this page
    more_after: bool
    more_before: bool


def _sort_key(q: ObservationQuery) -> Any:
    return {"date": m.Observation.effective_start, "_lastUpdated": m.Observation.received_at, "_id": m.Observation.id}[
        q.sort
    ]


def sort_value(q: ObservationQuery, row: Any) -> Any:
    """A page row's value of the sort key (``_sort_key``)."""
    return {"date": row.effective_start, "_lastUpdated": row.received_at, "_id": row.id}[q.sort]


def _edge(q: ObservationQuery, mark: list[str] | tuple[str, str]) -> tuple[Any, str]:
    return (mark[0] if q.sort == "_id" else datetime.fromisoformat(mark[0]), mark[1])


def page_rows(
    session: Session,
    q: ObservationQuery,
    filters: list[ColumnElement[bool]],
    cursor: Cursor | None,
    query_items: list[tuple[str, str]],
    reader: str,
    as_text: bool = False,
    settings_of: str | None = None,
) -> Page:
    """The rows of one page: keyset on (sort key, id) under the walk's snapshot; each with its ``resource``, or
    (``as_text``) its served text and marks instead (``spliced``). ``settings_of``: a patient key whose highest
    monitoring settings version each row also carries (``settings_version``: ``_settings_version``), read in the
    same statement."""
    key = _sort_key(q)
    settings = _SETTINGS_VERSION if settings_of is not None else None
    bound = {"settings_of": settings_of} if settings_of is not None else {}
    if cursor is None and not q.offset:
        # the first page, its snapshot and the count in one statement (one statement sees one snapshot: the
        # rows it counts and returns are the snapshot's)
        at = mark(session)
        first = _page_statement(
            q, key, filters, as_text, reverse=q.descending, mark=at, count=counted(filters), settings=settings
        )
        rows = _rows(session, first, as_text, bound)
        if rows:
            snapshot = snapshot_of(rows[0].snapshot_mark)
            total = int(rows[0].total)
            items = [(k, v) for k, v in query_items if k not in ("_offset", PAGE_PARAMETER)]
            cursor = Cursor(items=items, snapshot=snapshot, total=total, reader=reader)
            return Page(rows[: q.count], cursor, more_after=len(rows) > q.count, more_before=False)
    if cursor is None:  # an offset, or nothing found: counted first, then the page under that count's snapshot
        total, snapshot = count_at_snapshot(session, filters)
        filters = [*filters, within(snapshot)]
        items = [(k, v) for k, v in query_items if k not in ("_offset", PAGE_PARAMETER)]
        cursor = Cursor(items=items, snapshot=snapshot, total=total, reader=reader)
    else:
        filters = [*filters, within(cursor.snapshot)]
    backwards = cursor.before is not None
    if cursor.after is not None:
        edge = _edge(q, cursor.after)
        filters.append(tuple_(key, m.Observation.id) < edge if q.descending else tuple_(key, m.Observation.id) > edge)
    elif cursor.before is not None:
        edge = _edge(q, cursor.before)
        filters.append(tuple_(key, m.Observation.id) > edge if q.descending else tuple_(key, m.Observation.id) < edge)
    stmt = _page_statement(q, key, filters, as_text, reverse=q.descending != backwards, settings=settings)
    if cursor.after is None and cursor.before is None and q.offset:
        stmt = stmt.offset(q.offset)
    rows = _rows(session, stmt, as_text, bound)
    more = len(rows) > q.count
    rows = rows[: q.count]
    if backwards:
        rows.reverse()
        return Page(rows, cursor, more_after=True, more_before=more)
    first_page = cursor.after is None
    return Page(rows, cursor, more_after=more, more_before=(not first_page) or q.offset > 0)


class TextRow(NamedTuple):
    """A page row read as its served text (``spliced``). A tuple: a page's code reads its fields a dozen times a
    row, and a SQLAlchemy Row's attribute costs ten times a tuple's."""

    id: str
    patient_key: str
    # SQLite: its UTF-8 bytes (from the resource when stored once: never None); PostgreSQL: the text (``served_utf8``)
    served_json: bytes | str | None
    served_marks: str | None
    received_at: datetime
    effective_start: datetime
    snapshot_mark: str | None = None
    total: int | None = None
    settings_version: str | None = None


class ResourceRow(NamedTuple):
    """A page row read as its resource (parsed)."""

    id: str
    patient_key: str
    resource: dict[str, Any]
    received_at: datetime
    effective_start: datetime
    snapshot_mark: str | None = None
    total: int | None = None
    settings_version: str | None = None


def _rows(session: Session, stmt: Any, as_text: bool, bound: dict[str, Any]) -> list[Any]:
    """The rows of a page statement (Core: no ORM loading) as tuples of the columns ``_page_statement`` names."""
    make = TextRow if as_text else ResourceRow
    return [make(*row) for row in session.connection().execute(stmt, bound).all()]  # one fetchall, not a fetch a row


def _page_statement(
    q: ObservationQuery,
    key: Any,
    filters: list[ColumnElement[bool]],
    as_text: bool,
    *,
    reverse: bool,
    mark: ColumnElement[Any] | None = None,
    count: ColumnElement[Any] | None = None,
    settings: ColumnElement[Any] | None = None,
) -> Any:
    """The SELECT of a page: ``q.count + 1`` rows (one more tells whether there is a next page) in (sort key, id)
    order, with the paging ``mark`` (``mark``) as ``snapshot_mark``, the ``count`` as ``total`` and ``settings``
    as ``settings_version`` (each NULL when not given)."""
    order = [key.desc(), m.Observation.id.desc()] if reverse else [key.asc(), m.Observation.id.asc()]
    content = [_SERVED_UTF8, m.Observation.served_marks] if as_text else [m.Observation.resource]
    marked = [
        (mark if mark is not None else null()).label("snapshot_mark"),
        (count if count is not None else null()).label("total"),
        (settings if settings is not None else null()).label("settings_version"),
    ]
    return (
        select(
            m.Observation.id,
            m.Observation.patient_key,
            *content,
            m.Observation.received_at,
            m.Observation.effective_start,  # the sort key is one of these (``sort_value``): not read twice
            *marked,
        )
        .where(*filters)
        .order_by(*order)
        .limit(q.count + 1)
    )


def _settings_version() -> ColumnElement[Any]:
    """The highest monitoring settings version of the patient bound as ``settings_of`` and when it was recorded
    (``"<version>|<recorded_at>"``; ``"0"``: none stored, the defaults), as an uncorrelated scalar subquery
    (evaluated once). Versions are only ever added, so this names the patient's whole settings history."""
    ms = m.MonitoringSettings
    top = cast(ms.version, String) + "|" + cast(ms.recorded_at, String)
    newest = select(top).where(ms.patient_key == bindparam("settings_of")).order_by(ms.version.desc()).limit(1)
    return func.coalesce(newest.correlate(None).scalar_subquery(), "0")


# built once, not per search: each page statement that carries it binds ``settings_of``
_SETTINGS_VERSION = _settings_version()


class served_utf8(FunctionElement[bytes]):
    """An Observation's served text as a page writes from it (``spliced``), given its ``served_json`` and its
    ``resource``: on SQLite its UTF-8 bytes as stored (``CAST AS BLOB``: nothing decoded, spliced as bytes by
    ``served.splice_utf8`` and sent as they are), from ``served_json`` or else the resource, which is then the
    text (stored once, ``homediag.served``); on
    PostgreSQL the text as psycopg decodes it (spliced as a string and encoded once with its entry: a bytea,
    ``convert_to``, is sent in hex, measured 3 ms more a page, and encoding the text to splice it as bytes saved
    nothing)."""

    type = Text()
    inherit_cache = True
    name = "served_utf8"


@compiles(served_utf8)
def _served_utf8(element: served_utf8, compiler: Any, **kw: Any) -> str:
    served_json, resource = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(coalesce({served_json}, {resource}) AS BLOB)"


@compiles(served_utf8, "postgresql")
def _served_utf8_postgresql(element: served_utf8, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses.clauses[0], **kw))


_SERVED_UTF8 = served_utf8(m.Observation.served_json, m.Observation.resource).label("served_json")
