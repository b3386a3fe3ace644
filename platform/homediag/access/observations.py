"""Observation reads: one by id, and searches narrowed in SQL to what the reader may see."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, case, false, or_, select
from sqlalchemy.orm import Session

from homediag import bundles, versions
from homediag.clock import from_store, to_store, utcnow
from homediag.errors import BadRequest, Forbidden, NotFound
from homediag.fhir_profiles import Issue, operation_outcome, terminology
from homediag.keys import KeyRing
from homediag.search_params import DateRange, ObservationQuery, QuantityParam, Token
from homediag.store import models as m
from homediag.users import Principal

from . import paging
from .components import component_match
from .decisions import Decisions
from .interpretation import interpret
from .spliced import served_as_text, spliced
from .view import View, Window


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
                    seen = versions.stamp(interpret(self, session, view, [row])[0], 1, row.received_at)
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
        path: str = "Observation",
    ) -> dict[str, Any]:
        """One page of a search walk: the first (``cursor`` None: takes the snapshot and the total) or a
        later one (``cursor`` from the ``_page`` token of a link this method made)."""
        view = self.view(principal, purpose)
        with self.rt.sessions.begin() as session:
            audited = False
            named_key: str | None = None
            if q.patient_ids:
                patient_id = view.real_id("Patient", q.patient_ids[0])
                named_key, windows = self.named_patient_windows(session, view, patient_id) if patient_id else (None, {})
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
            moved = date_mover(session, view, windows) if q.dates or q.last_updated else None
            filters = [self.scope(windows), self.vendor_scope(view), *_filters(q, devices, moved)]
            for ids in q.ids:  # _id: the reader's ids (its pseudonyms outside care)
                real = [r for r in (view.real_id("Observation", i) for i in ids) if r is not None]
                filters.append(m.Observation.id.in_(real))
            as_text = served_as_text(q, view)
            # a clinician's page of one named patient reads that patient's settings version with its rows: what the
            # triage of its readings is remembered by (``spliced``)
            settings_of = named_key if as_text and named_key in windows and view.principal.role == "clinician" else None
            reader = _reader(principal, view)
            page = paging.page_rows(session, q, filters, cursor, query_items, reader, as_text, settings_of)
            rows = page.rows
            self._audit_returned(
                session, principal, view.purpose, "Observation", [r.patient_key for r in rows], audited=audited
            )
            if as_text:
                tops = {settings_of: rows[0].settings_version} if settings_of is not None and rows else None
                entries = spliced(self, session, view, rows, tops)
                return _searchset(self.rt.keys, base_url, q, page, entries, [], path)
            resources = interpret(self, session, view, rows)  # with their triage, for a clinician
        shown = [view.shown(versions.stamp(res, 1, r.received_at)) for res, r in zip(resources, rows, strict=True)]
        included = self._included(principal, q, shown, purpose) if q.includes else []
        return _searchset(self.rt.keys, base_url, q, page, [_subset(r, q) for r in shown], included, path)

    def _included(
        self, principal: Principal, q: ObservationQuery, shown: list[dict[str, Any]], purpose: str | None
    ) -> list[dict[str, Any]]:
        """``_include``: the patients and devices the page refers to, each read through this layer's own
        read (decided and audited as a read): what the reader may not read is left out."""
        wanted: dict[str, None] = {}
        for resource in shown:
            if "patient" in q.includes or "subject" in q.includes:
                ref = (resource.get("subject") or {}).get("reference")
                if isinstance(ref, str) and ref.startswith("Patient/"):
                    wanted[ref] = None
            if "device" in q.includes:
                ref = (resource.get("device") or {}).get("reference")
                if isinstance(ref, str) and ref.startswith("Device/"):
                    wanted[ref] = None
        found = []
        for ref in wanted:
            kind, _, shown_id = ref.partition("/")
            try:
                if kind == "Patient":
                    found.append(self.read_patient(principal, shown_id, purpose=purpose))  # type: ignore[attr-defined]
                else:
                    found.append(self.read_device(principal, shown_id, purpose))  # type: ignore[attr-defined]
            except (NotFound, Forbidden):
                continue
        return found

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


def search_filters(
    q: ObservationQuery, device_ids: list[str | None], moved: Mover | None = None
) -> list[ColumnElement[bool]]:
    """The SQL of a query's criteria (not who may see what: the caller adds that), dates in the reader's time
    (``moved``). Also what a PHD gateway's conditional create matches with, within the reading's patient."""
    return _filters(q, device_ids, moved)


# A date bound in the reader's (shifted) time as an expression on the stored time; None: no patient to match.
Mover = Callable[[datetime], ColumnElement[Any] | None]


def _filters(
    q: ObservationQuery, device_ids: list[str | None], moved: Mover | None = None
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    for tokens in q.codes:
        filters.append(or_(*(_code_clause(t) for t in tokens)))
    for tokens in q.categories:
        filters.append(or_(*(_has_word(m.Observation.category, t.code) for t in tokens)))
    if device_ids:
        filters.append(m.Observation.device_id.in_([d for d in device_ids if d is not None]))
    for d in q.dates:
        filters.append(_date_clause(m.Observation.effective_start, d, moved))
    for d in q.last_updated:
        filters.append(_date_clause(m.Observation.received_at, d, moved))
    for tokens in q.not_codes:
        filters.append(~or_(*(_code_clause(t) for t in tokens)))
    for tokens in q.not_categories:
        filters.append(~or_(*(_has_word(m.Observation.category, t.code) for t in tokens)))
    for quantities in q.quantities:
        filters.append(or_(*(_quantity_clause(p) for p in quantities)))
    for tokens in q.component_codes:
        filters.append(or_(*(component_match(t.system or None, t.code) for t in tokens)))
    for tokens in q.combo_codes:
        filters.append(or_(*(or_(_code_clause(t), component_match(t.system or None, t.code)) for t in tokens)))
    for quantities in q.component_quantities:
        filters.append(or_(*(_component_quantity_clause(p) for p in quantities)))
    columns = {
        "code": m.Observation.code,
        "category": m.Observation.category,
        "device": m.Observation.device_id,
        "value-quantity": m.Observation.value,
    }
    for name, missing in q.missing.items():
        col = columns[name]
        absent = or_(col.is_(None), col == "") if name in ("code", "category") else col.is_(None)
        filters.append(absent if missing else ~absent)
    return filters


def _date_clause(col: Any, d: DateRange, moved: Mover | None = None) -> ColumnElement[bool]:
    """A date parameter on a point in time ``col`` (naive UTC): the value's range [low, high) per prefix,
    in the reader's time (``moved``: the bounds as each row's patient's shifted time)."""
    low, high = to_store(d.low), to_store(d.high)
    prefix = d.prefix
    if prefix == "ap":  # approximately: the range widened by 10% of its distance from now (at least a day)
        now = utcnow()
        margin = max(abs(now - low), abs(now - high)) / 10
        margin = max(margin, timedelta(days=1))
        low, high, prefix = _moved(low, margin), _moved(high, -margin), "eq"
    if moved is not None:
        low_at, high_at = moved(low), moved(high)
        if low_at is None or high_at is None:
            return false()
        return _compare(col, prefix, low_at, high_at)
    return _compare(col, prefix, low, high)


def _compare(col: Any, prefix: str, low: Any, high: Any) -> ColumnElement[bool]:
    """``col`` against the range [low, high) as the prefix asks (bounds: times or expressions). Only the asked
    comparison is built (each is a few SQL expression objects: building all eight cost every dated search)."""
    if prefix == "eq":
        return and_(col >= low, col < high)
    if prefix == "ne":
        return or_(col < low, col >= high)
    if prefix in ("gt", "sa"):
        return col >= high
    if prefix == "ge":
        return col >= low
    if prefix in ("lt", "eb"):
        return col < low
    if prefix == "le":
        return col < high
    raise KeyError(prefix)


def _quantity_units(p: QuantityParam) -> list[tuple[str | None, Decimal]]:
    """(stored unit, the value in it) pairs the parameter stands for: as sent, and converted (UCUM) to the
    canonical unit of every measurement that knows the unit it was sent in."""
    if p.code is None:
        return [(None, Decimal(1))]
    pairs: list[tuple[str | None, Decimal]] = [(p.code, Decimal(1))]
    if p.system in (None, "http://unitsofmeasure.org"):
        for measurement in terminology.MEASUREMENTS.values():
            conv = measurement.conversions.get(p.code)
            if conv is not None and measurement.unit and measurement.unit != p.code and conv.offset == 0:
                pairs.append((measurement.unit, conv.factor))
    return list(dict.fromkeys(pairs))


def _quantity_clause(p: QuantityParam) -> ColumnElement[bool]:
    """value-quantity on the stored value and unit (a panel's components are not searched this way)."""
    col = m.Observation.value
    clauses = []
    for unit, factor in _quantity_units(p):
        low, high, value = (float(x * factor) for x in (p.low, p.high, p.value))
        if factor < 0:
            low, high = high, low
        if p.prefix == "ap":
            margin = abs(value) / 10
            compare = and_(col >= value - margin, col <= value + margin)
        else:
            compare = {
                "eq": and_(col >= low, col < high),
                "ne": or_(col < low, col >= high),
                "gt": col > value,
                "sa": col > value,
                "ge": col >= value,
                "lt": col < value,
                "eb": col < value,
                "le": col <= value,
            }[p.prefix]
        clauses.append(and_(col.is_not(None), compare, *([m.Observation.unit == unit] if unit is not None else [])))
    return or_(*clauses)


def _component_quantity_clause(p: QuantityParam) -> ColumnElement[bool]:
    """component-value-quantity: a component whose value compares as asked, in the unit as sent or converted."""
    clauses = []
    for unit, factor in _quantity_units(p):
        low, high, value = (float(x * factor) for x in (p.low, p.high, p.value))
        if p.prefix == "ap":
            compare: tuple[Any, ...] = ("range", value - abs(value) / 10, value + abs(value) / 10)
        elif p.prefix == "eq":
            compare = ("range", low, high)
        elif p.prefix == "ne":
            compare = ("outside", low, high)
        else:
            compare = (p.prefix, value)
        clauses.append(component_match(None, None, compare, unit))
    return or_(*clauses)


def date_mover(session: Session, view: View, windows: dict[str, Window]) -> Mover | None:
    """How a date bound in the reader's time becomes one on the stored (real) time: unchanged in care
    (None); outside care each patient's times are shifted, so a reading matches when its shifted time
    does: the bound is moved back by the patient's offset, chosen per row by a CASE on the patient key
    (one expression, however many patients: a chain of ORs would exceed SQLite's expression depth
    past a thousand patients). The Observation search and the Bulk Data export's ``_typeFilter`` share it."""
    if not view.shifted:
        return None
    ids = session.execute(
        select(m.Patient.patient_key, m.Patient.id).where(m.Patient.patient_key.in_(list(windows)))
    ).all()
    offsets = {pkey: view.offset(pid) for pkey, pid in ids}

    def moved(bound: datetime) -> ColumnElement[Any] | None:
        if not offsets:
            return None
        return case({k: _moved(bound, off) for k, off in offsets.items()}, value=m.Observation.patient_key)

    return moved


def _moved(when: datetime, offset: timedelta) -> datetime:
    """``when - offset``, held at the ends of the calendar rather than overflowing."""
    try:
        return when - offset
    except OverflowError:
        return datetime.min if offset > timedelta(0) else datetime.max


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
    if found:  # one primary code (the usual case): an equality, no list expanded into the SQL at each run
        primary = sorted({mm.primary_code for mm in found})
        return m.Observation.code == primary[0] if len(primary) == 1 else m.Observation.code.in_(primary)
    if token.system:
        return _has_word(m.Observation.codes, f"{token.system}|{token.code}")
    code = _like_literal(token.code)
    return or_(m.Observation.codes.like(f"%|{code} %", escape="\\"), m.Observation.codes.like(f"%|{code}", escape="\\"))


def _reader(principal: Principal, view: View) -> str:
    return f"{principal.id}|{view.purpose}|{view.domain.name if view.domain else ''}"


# what _summary=true keeps of an Observation (the elements the R4 spec marks as summary), besides meta and id
_SUMMARY_ELEMENTS = (
    "resourceType", "id", "meta", "implicitRules", "identifier", "basedOn", "partOf", "status", "category", "code",
    "subject", "focus", "encounter", "effectiveDateTime", "effectivePeriod", "effectiveTiming", "effectiveInstant",
    "issued", "performer", "valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger",
    "valueRange", "valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod",
    "dataAbsentReason", "hasMember", "derivedFrom",
)  # fmt: skip
_SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


def _subset(resource: dict[str, Any], q: ObservationQuery) -> dict[str, Any]:
    """The resource as _summary / _elements ask (tagged SUBSETTED when elements were left out)."""
    if q.summary in (None, "false") and not q.elements:
        return resource
    if q.summary == "data":
        out = {k: v for k, v in resource.items() if k != "text"}
    elif q.summary == "true":
        out = {k: v for k, v in resource.items() if k in _SUMMARY_ELEMENTS}
    else:
        keep = {"resourceType", "id", "meta", *(e.split(".")[0] for e in q.elements)}
        keep |= {k for k in resource if any(k.startswith(e) and k[len(e) :][:1].isupper() for e in q.elements)}
        out = {k: v for k, v in resource.items() if k in keep}
    if out.keys() != resource.keys():
        meta = dict(out.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
        out["meta"] = meta
    return out


def _searchset(
    keys: KeyRing,
    base_url: str,
    q: ObservationQuery,
    page: paging.Page,
    resources: list[Mapping[str, Any]] | list[dict[str, Any]],
    included: list[dict[str, Any]] | None = None,
    path: str = "Observation",
) -> dict[str, Any]:
    walk = page.cursor

    def link(**edge: Any) -> str:
        moved = paging.Cursor(walk.items, walk.snapshot, walk.total, walk.reader, **edge)
        return f"{base_url}/{path}?{urlencode([(paging.PAGE_PARAMETER, paging.seal(keys, moved))])}"

    def mark(row: Any) -> tuple[str, str]:
        value = paging.sort_value(q, row)
        return (value if isinstance(value, str) else value.isoformat(), row.id)

    self_items = walk.items if any(k == "_count" for k, _ in walk.items) else [*walk.items, ("_count", str(q.count))]
    links = {"self": f"{base_url}/{path}?{urlencode(self_items)}"}
    if walk.after is not None or walk.before is not None:
        links["self"] = link(index=walk.index, after=walk.after, before=walk.before)
    # _count=0 asks for the total only: a next/previous link would point at this page again, forever.
    if q.count > 0 and page.rows:
        if page.more_after:
            links["next"] = link(index=walk.index + 1, after=mark(page.rows[-1]))
        if page.more_before:
            links["previous"] = link(index=max(walk.index - 1, 0), before=mark(page.rows[0]))
    outcome = None
    if q.ignored:
        outcome = operation_outcome(
            [
                Issue(
                    "warning",
                    "not-supported",
                    f"unknown search parameter '{name}' ignored (Prefer: handling=lenient)",
                    name,
                )
                for name in q.ignored
            ]
        )
    return bundles.searchset(
        base_url,
        resources,
        total=None if q.total == "none" else walk.total,
        links=links,
        included=included,
        outcome=outcome,
    )
