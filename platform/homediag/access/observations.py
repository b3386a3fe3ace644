"""Observation reads: one by id, and searches narrowed in SQL to what the reader may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, false, func, or_, select, tuple_
from sqlalchemy.orm import Session

from homediag import bundles, versions
from homediag.clock import from_store, to_store
from homediag.errors import BadRequest, NotFound
from homediag.fhir_profiles import terminology
from homediag.keys import KeyRing
from homediag.search_params import ObservationQuery, Token
from homediag.store import models as m
from homediag.users import Principal

from . import paging
from .decisions import Decisions
from .view import View


class ObservationReads(Decisions):
    def read_observation(self, principal: Principal, observation_id: str, purpose: str | None = None) -> dict[str, Any]:
        view = self.view(principal, purpose)
        real_id = view.real_id("Observation", observation_id)
        # NotFound is raised after the transaction commits: raised inside it, the deny audit would roll back.
        seen: dict[str, Any] | None = None
        with self.rt.sessions.begin() as session:
            row = None
            if real_id is not None:
                row = session.execute(
                    select(m.Observation).where(m.Observation.id == real_id, self.vendor_scope(view))
                ).scalar_one_or_none()
            if row is None:
                entity = f"Observation/{observation_id}"
                self._audit(
                    session, principal, "read", "deny", purpose=view.purpose, entity=entity, detail="no such resource"
                )
            else:
                decision = self._decide_for(session, view, row.patient_key, from_store(row.effective_start))
                self._audit(
                    session,
                    principal,
                    "read",
                    "permit" if decision.permit else "deny",
                    purpose=view.purpose,
                    patient_key=row.patient_key,
                    entity=f"Observation/{row.id}",
                    detail=decision.reason,
                )
                if decision.permit:
                    seen = versions.stamp(row.resource, 1, row.received_at)
        if seen is None:
            raise NotFound.resource("Observation", observation_id)
        return view.shown(seen)

    def read_observation_version(
        self, principal: Principal, observation_id: str, version: str, purpose: str | None = None
    ) -> dict[str, Any]:
        """vread: a reading is stored once and never changed, so version 1 is the only one."""
        current = self.read_observation(principal, observation_id, purpose)  # decided and audited as a read
        if version != current["meta"]["versionId"]:
            raise NotFound(f"Observation/{observation_id} has no version {version[:20]} (a reading has only version 1)")
        return current

    def search_observations(
        self,
        principal: Principal,
        q: ObservationQuery,
        base_url: str,
        query_items: list[tuple[str, str]],
        purpose: str | None = None,
        cursor: paging.Cursor | None = None,
    ) -> dict[str, Any]:
        """One page of a search walk: the first (``cursor`` None: takes the snapshot and the total) or a
        later one (``cursor`` from the ``_page`` token of a link this method made)."""
        view = self.view(principal, purpose)
        with self.rt.sessions.begin() as session:
            audited = False
            if q.patient_ids:
                patient_id = view.real_id("Patient", q.patient_ids[0])
                named_key = (
                    session.execute(
                        select(m.Patient.patient_key).where(m.Patient.id == patient_id)
                    ).scalar_one_or_none()
                    if patient_id
                    else None
                )
                windows = self.readable_windows(session, view, [named_key]) if named_key else {}
                if named_key is not None and named_key not in windows:
                    reason = (
                        self._relation_reason(session, view, named_key)
                        or self.decide(session, view.purpose, named_key, None).reason
                    )
                    self._audit(
                        session,
                        principal,
                        "search",
                        "deny",
                        purpose=view.purpose,
                        patient_key=named_key,
                        entity="Observation",
                        detail=reason,
                    )
                    audited = True
            else:
                windows = self.readable_windows(session, view)

            devices = [view.real_id("Device", shown) for shown in q.device_ids]
            filters = [self.scope(windows), self.vendor_scope(view), *_filters(q, devices)]
            page = _page_rows(session, q, filters, cursor, query_items, _reader(principal, view))
            rows = page.rows
            for pkey in sorted({r.patient_key for r in rows}):
                returned = sum(1 for r in rows if r.patient_key == pkey)
                self._audit(
                    session,
                    principal,
                    "search",
                    "permit",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity="Observation",
                    detail=f"{returned} returned",
                )
                audited = True
            if not audited:
                self._audit(
                    session,
                    principal,
                    "search",
                    "permit",
                    purpose=view.purpose,
                    entity="Observation",
                    detail="0 returned",
                )
        shown = [view.shown(versions.stamp(r.resource, 1, r.received_at)) for r in rows]
        return _searchset(self.rt.keys, base_url, q, page, shown)

    def page_cursor(
        self, principal: Principal, items: list[tuple[str, str]], purpose: str | None = None
    ) -> paging.Cursor | None:
        """The walk a ``_page`` link continues (None: the query is a first page). A page link carries
        the whole query: any other parameter beside it is refused."""
        tokens = [v for k, v in items if k == paging.PAGE_PARAMETER]
        if not tokens:
            return None
        others = sorted({k for k, _ in items if k not in (paging.PAGE_PARAMETER, "_format")})
        if len(tokens) > 1 or others:
            raise BadRequest(
                f"{paging.PAGE_PARAMETER}: a page link carries its whole search; send it alone"
                + (f" (not with {', '.join(others)})" if others else ""),
                paging.PAGE_PARAMETER,
            )
        return paging.unseal(self.rt.keys, tokens[0], _reader(principal, self.view(principal, purpose)))

    def device_seen(self, session: Session, view: View, device_id: str) -> bool:
        """Whether the device took a reading of a patient this reader may see now (consent, care, data time).
        Only the consents of the patients the device measured are read."""
        measured = select(m.Observation.patient_key).where(m.Observation.device_id == device_id).distinct()
        windows = self.readable_windows(session, view, list(session.execute(measured).scalars()))
        stmt = select(m.Observation.id).where(
            m.Observation.device_id == device_id, self.scope(windows), self.vendor_scope(view)
        )
        return session.execute(stmt.limit(1)).first() is not None


def _filters(q: ObservationQuery, device_ids: list[str | None]) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    for tokens in q.codes:
        filters.append(or_(*(_code_clause(t) for t in tokens)))
    for tokens in q.categories:
        filters.append(or_(*(_has_word(m.Observation.category, t.code) for t in tokens)))
    if device_ids:
        filters.append(m.Observation.device_id.in_([d for d in device_ids if d is not None]))
    for d in q.dates:
        low, high = to_store(d.low), to_store(d.high)
        col = m.Observation.effective_start
        filters.append(
            {
                "eq": and_(col >= low, col < high),
                "ne": or_(col < low, col >= high),
                "gt": col >= high,
                "ge": col >= low,
                "lt": col < low,
                "le": col < high,
            }[d.prefix]
        )
    return filters


def _like_literal(text: str) -> str:
    """``text`` for a LIKE pattern, its wildcards escaped (``code=%`` matches the code '%', not everything)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has_word(column: Any, word: str) -> ColumnElement[bool]:
    """Whether a space-separated column holds ``word`` as a whole word."""
    w = _like_literal(word)
    return or_(
        column == word,
        column.like(f"{w} %", escape="\\"),
        column.like(f"% {w}", escape="\\"),
        column.like(f"% {w} %", escape="\\"),
    )


def _code_clause(token: Token) -> ColumnElement[bool]:
    """A code token: through the terminology to the indexed primary codes where it can, else on all codings."""
    if token.system == "":
        return false()  # every coding the platform stores has a system
    found = terminology.matching(token.system, token.code)
    if found:
        return m.Observation.code.in_(sorted({mm.primary_code for mm in found}))
    if token.system:
        return _has_word(m.Observation.codes, f"{token.system}|{token.code}")
    code = _like_literal(token.code)
    return or_(m.Observation.codes.like(f"%|{code} %", escape="\\"), m.Observation.codes.like(f"%|{code}", escape="\\"))


def _reader(principal: Principal, view: View) -> str:
    return f"{principal.id}|{view.purpose}|{view.domain.name if view.domain else ''}"


@dataclass
class _Page:
    rows: list[Any]
    cursor: paging.Cursor  # the walk, at this page
    more_after: bool
    more_before: bool


def _sort_key(q: ObservationQuery) -> Any:
    return m.Observation.effective_start


def _page_rows(
    session: Session,
    q: ObservationQuery,
    filters: list[ColumnElement[bool]],
    cursor: paging.Cursor | None,
    query_items: list[tuple[str, str]],
    reader: str,
) -> _Page:
    """The rows of one page: keyset on (sort key, id) under the walk's snapshot."""
    key = _sort_key(q)
    if cursor is None:
        snapshot = paging.take_snapshot(session)
        filters = [*filters, paging.within(snapshot)]
        total = session.execute(select(func.count()).select_from(m.Observation).where(*filters)).scalar_one()
        items = [(k, v) for k, v in query_items if k not in ("_offset", paging.PAGE_PARAMETER)]
        cursor = paging.Cursor(items=items, snapshot=snapshot, total=total, reader=reader)
    else:
        filters = [*filters, paging.within(cursor.snapshot)]
    backwards = cursor.before is not None
    if cursor.after is not None:
        edge = (datetime.fromisoformat(cursor.after[0]), cursor.after[1])
        filters.append(tuple_(key, m.Observation.id) < edge if q.descending else tuple_(key, m.Observation.id) > edge)
    elif cursor.before is not None:
        edge = (datetime.fromisoformat(cursor.before[0]), cursor.before[1])
        filters.append(tuple_(key, m.Observation.id) > edge if q.descending else tuple_(key, m.Observation.id) < edge)
    reverse = q.descending != backwards
    order = [key.desc(), m.Observation.id.desc()] if reverse else [key.asc(), m.Observation.id.asc()]
    stmt = (
        select(
            m.Observation.id,
            m.Observation.patient_key,
            m.Observation.resource,
            m.Observation.received_at,
            key.label("sort_value"),
        )
        .where(*filters)
        .order_by(*order)
        .limit(q.count + 1)
    )
    if cursor.after is None and cursor.before is None and q.offset:
        stmt = stmt.offset(q.offset)
    rows = list(session.execute(stmt).all())
    more = len(rows) > q.count
    rows = rows[: q.count]
    if backwards:
        rows.reverse()
        return _Page(rows, cursor, more_after=True, more_before=more)
    first_page = cursor.after is None
    return _Page(rows, cursor, more_after=more, more_before=(not first_page) or q.offset > 0)


def _searchset(
    keys: KeyRing,
    base_url: str,
    q: ObservationQuery,
    page: _Page,
    resources: list[dict[str, Any]],
) -> dict[str, Any]:
    walk = page.cursor

    def link(**edge: Any) -> str:
        moved = paging.Cursor(walk.items, walk.snapshot, walk.total, walk.reader, **edge)
        return f"{base_url}/Observation?{urlencode([(paging.PAGE_PARAMETER, paging.seal(keys, moved))])}"

    def mark(row: Any) -> tuple[str, str]:
        return (row.sort_value.isoformat(), row.id)

    self_items = walk.items if any(k == "_count" for k, _ in walk.items) else [*walk.items, ("_count", str(q.count))]
    links = {"self": f"{base_url}/Observation?{urlencode(self_items)}"}
    if walk.after is not None or walk.before is not None:
        links["self"] = link(index=walk.index, after=walk.after, before=walk.before)
    # _count=0 asks for the total only: a next/previous link would point at this page again, forever.
    if q.count > 0 and page.rows:
        if page.more_after:
            links["next"] = link(index=walk.index + 1, after=mark(page.rows[-1]))
        if page.more_before:
            links["previous"] = link(index=max(walk.index - 1, 0), before=mark(page.rows[0]))
    return bundles.searchset(base_url, resources, total=walk.total, links=links)
