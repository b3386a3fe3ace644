"""Observation reads: one by id, and searches narrowed in SQL to what the reader may see."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session

from homediag import bundles
from homediag.clock import from_store, to_store
from homediag.errors import NotFound
from homediag.fhir_profiles import terminology
from homediag.search_params import ObservationQuery, Token
from homediag.store import models as m
from homediag.users import Principal

from .decisions import Decisions
from .monitoring import interpret
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
                    seen = interpret(self, session, view, [row])[0]  # with its triage, for a clinician
        if seen is None:
            raise NotFound.resource("Observation", observation_id)
        return view.shown(seen)

    def search_observations(
        self,
        principal: Principal,
        q: ObservationQuery,
        base_url: str,
        query_items: list[tuple[str, str]],
        purpose: str | None = None,
    ) -> dict[str, Any]:
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
            total = session.execute(select(func.count()).select_from(m.Observation).where(*filters)).scalar_one()
            order = m.Observation.effective_start.desc() if q.descending else m.Observation.effective_start.asc()
            rows = session.execute(
                select(m.Observation.id, m.Observation.patient_key, m.Observation.resource)
                .where(*filters)
                .order_by(order, m.Observation.id)
                .offset(q.offset)
                .limit(q.count)
            ).all()
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
            resources = interpret(self, session, view, rows)  # with their triage, for a clinician
        return _searchset(base_url, query_items, q, total, [view.shown(r) for r in resources])

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


def _searchset(
    base_url: str,
    query_items: list[tuple[str, str]],
    q: ObservationQuery,
    total: int,
    resources: list[dict[str, Any]],
) -> dict[str, Any]:
    def link(offset: int) -> str:
        items = [(k, v) for k, v in query_items if k not in ("_offset", "_count")]
        items += [("_count", str(q.count)), ("_offset", str(offset))]
        return f"{base_url}/Observation?{urlencode(items)}"

    links = {"self": link(q.offset)}
    # _count=0 asks for the total only: a next/previous link would point at this page again, forever.
    if q.count > 0 and q.offset + q.count < total:
        links["next"] = link(q.offset + q.count)
    if q.count > 0 and q.offset > 0:
        links["previous"] = link(max(q.offset - q.count, 0))
    return bundles.searchset(base_url, resources, total=total, links=links)
