"""The access layer: the one enforcement point every read of patient data goes through.

It authenticates nothing (the API does that); given a principal it decides, per patient, from the
patient's consents (``homediag.consent``) and the principal's role and purpose, what may be seen.
Searches are narrowed in SQL before counting and paging, so totals and links show only what is
permitted. A resource that may not be seen answers exactly as one that does not exist. Every
decision, permit and deny, is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.orm import Session

from homediag import consent as consent_model
from homediag.fhir_profiles import terminology

from . import audit
from .clock import from_store, to_store
from .identity import CPR_SYSTEM, SealedIdentity, open_identity
from .runtime import Runtime
from .search_params import ObservationQuery, Token
from .store import models as m
from .users import Principal

# Roles that may read clinical values, and the purpose of use each reads under.
READ_PURPOSE = {"clinician": "TREAT"}


class NotFound(Exception):
    """Does not exist, or may not be seen: the same answer either way."""

    def __init__(self, resource_type: str, resource_id: str) -> None:
        super().__init__(f"{resource_type}/{resource_id} is not known")


class Forbidden(Exception):
    """The role may not do this at all (HTTP 403), whatever the patient."""


@dataclass(frozen=True)
class Window:
    """Data times a reader may see for one patient: a union of [start, end), naive UTC, None = open."""

    intervals: tuple[tuple[datetime | None, datetime | None], ...]

    @classmethod
    def of(cls, window: consent_model.DataWindow) -> "Window":
        return cls(tuple((_naive(start), _naive(end)) for start, end in window.intervals))

    @property
    def is_open(self) -> bool:
        return self.intervals == ((None, None),)

    def sql(self) -> ColumnElement[bool]:
        spans: list[ColumnElement[bool]] = []
        for start, end in self.intervals:
            clauses: list[ColumnElement[bool]] = []
            if start is not None:
                clauses.append(m.Observation.effective_start >= start)
            if end is not None:
                clauses.append(m.Observation.effective_start < end)
            spans.append(and_(*clauses) if clauses else true())
        return or_(*spans)


def _naive(value: datetime | None) -> datetime | None:
    return to_store(value) if value is not None else None


class AccessService:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    # -- decisions -------------------------------------------------------------------------
    def _purpose(self, principal: Principal) -> str:
        purpose = READ_PURPOSE.get(principal.role)
        if purpose is None:
            raise Forbidden(f"the role '{principal.role}' may not read clinical data")
        return purpose

    def _records(self, session: Session, patient_keys: list[str] | None = None) -> dict[str, list[Any]]:
        """Each patient's consents, parsed. A (consent id, version) never changes, so its parse is cached;
        a withdrawal is a new version and is read fresh on the next request."""
        stmt = select(m.Consent.id, m.Consent.version, m.Consent.patient_key)
        if patient_keys is not None:
            stmt = stmt.where(m.Consent.patient_key.in_(patient_keys))
        current = session.execute(stmt).all()
        cache = self.rt.consent_cache
        missing = [row.id for row in current if (row.id, row.version) not in cache]
        if missing:
            if len(cache) > 50_000:
                cache.clear()
            for cid, version, resource in session.execute(select(m.Consent.id, m.Consent.version, m.Consent.resource).where(m.Consent.id.in_(missing))):
                cache[(cid, version)] = consent_model.parse_consent(resource)
        out: dict[str, list[Any]] = {}
        for row in current:
            record = cache.get((row.id, row.version))
            if record is None:  # changed between the two reads: parse it now
                resource = session.execute(select(m.Consent.resource).where(m.Consent.id == row.id)).scalar_one()
                record = consent_model.parse_consent(resource)
            out.setdefault(row.patient_key, []).append(record)
        return out

    def permitted_windows(self, session: Session, purpose: str, patient_keys: list[str] | None = None) -> dict[str, Window]:
        """Patient key -> the data window the purpose may see now; patients with nothing permitted are absent."""
        now = datetime.now(UTC)
        windows: dict[str, Window] = {}
        for pkey, records in self._records(session, patient_keys).items():
            window = consent_model.permitted_data_window(records, purpose=purpose, as_of=now)
            if window is not None:
                windows[pkey] = Window.of(window)
        return windows

    def decide(self, session: Session, purpose: str, pkey: str, data_time: datetime | None) -> consent_model.Decision:
        records = self._records(session, [pkey]).get(pkey, [])
        return consent_model.decide(records, purpose=purpose, data_time=data_time, as_of=datetime.now(UTC))

    # -- Observation -----------------------------------------------------------------------
    def read_observation(self, principal: Principal, observation_id: str) -> dict[str, Any]:
        purpose = self._purpose(principal)
        # NotFound is raised after the transaction commits: raised inside it, the deny audit would roll back.
        seen: dict[str, Any] | None = None
        with self.rt.sessions.begin() as session:
            row = session.get(m.Observation, observation_id)
            if row is None:
                audit.append(session, self.rt.keys, [audit.Entry(principal.id, principal.role, "read", "deny", purpose=purpose, entity=f"Observation/{observation_id}", detail="no such resource")])
            else:
                decision = self.decide(session, purpose, row.patient_key, from_store(row.effective_start))
                audit.append(session, self.rt.keys, [audit.Entry(principal.id, principal.role, "read", "permit" if decision.permit else "deny", purpose=purpose, patient_key=row.patient_key, entity=f"Observation/{observation_id}", detail=decision.reason)])
                if decision.permit:
                    seen = row.resource
        if seen is None:
            raise NotFound("Observation", observation_id)
        return seen

    def search_observations(self, principal: Principal, q: ObservationQuery, base_url: str, query_items: list[tuple[str, str]]) -> dict[str, Any]:
        purpose = self._purpose(principal)
        with self.rt.sessions.begin() as session:
            entries: list[audit.Entry] = []
            named_key: str | None = None
            if q.patient_ids:
                named_key = session.execute(select(m.Patient.patient_key).where(m.Patient.id == q.patient_ids[0])).scalar_one_or_none()
                windows = self.permitted_windows(session, purpose, [named_key]) if named_key else {}
                if named_key is not None and named_key not in windows:
                    reason = self.decide(session, purpose, named_key, None).reason
                    entries.append(audit.Entry(principal.id, principal.role, "search", "deny", purpose=purpose, patient_key=named_key, entity="Observation", detail=reason))
            else:
                windows = self.permitted_windows(session, purpose)

            scope = self._scope(windows)
            filters = [scope, *self._filters(session, q)]
            total = session.execute(select(func.count()).select_from(m.Observation).where(*filters)).scalar_one()
            order = m.Observation.effective_start.desc() if q.descending else m.Observation.effective_start.asc()
            rows = session.execute(
                select(m.Observation.id, m.Observation.patient_key, m.Observation.resource)
                .where(*filters).order_by(order, m.Observation.id).offset(q.offset).limit(q.count)
            ).all()
            for pkey in sorted({r.patient_key for r in rows}):
                entries.append(audit.Entry(principal.id, principal.role, "search", "permit", purpose=purpose, patient_key=pkey, entity="Observation", detail=f"{sum(1 for r in rows if r.patient_key == pkey)} returned"))
            if not entries:
                entries.append(audit.Entry(principal.id, principal.role, "search", "permit", purpose=purpose, entity="Observation", detail="0 returned"))
            audit.append(session, self.rt.keys, entries)
        return _bundle(base_url, "Observation", query_items, q, total, [r.resource for r in rows])

    def _scope(self, windows: dict[str, Window]) -> ColumnElement[bool]:
        if not windows:
            return false()
        open_keys = [k for k, w in windows.items() if w.is_open]
        clauses: list[ColumnElement[bool]] = []
        if open_keys:
            clauses.append(m.Observation.patient_key.in_(open_keys))
        clauses += [and_(m.Observation.patient_key == k, w.sql()) for k, w in windows.items() if k not in open_keys]
        return or_(*clauses)

    def _filters(self, session: Session, q: ObservationQuery) -> list[ColumnElement[bool]]:
        filters: list[ColumnElement[bool]] = []
        for tokens in q.codes:
            filters.append(or_(*(_code_clause(t) for t in tokens)))
        for tokens in q.categories:
            filters.append(or_(*(_has_word(m.Observation.category, t.code) for t in tokens)))
        if q.device_ids:
            filters.append(m.Observation.device_id.in_(q.device_ids))
        for d in q.dates:
            low, high = to_store(d.low), to_store(d.high)
            col = m.Observation.effective_start
            filters.append({
                "eq": and_(col >= low, col < high),
                "ne": or_(col < low, col >= high),
                "gt": col >= high,
                "ge": col >= low,
                "lt": col < low,
                "le": col < high,
            }[d.prefix])
        return filters

    # -- Patient ---------------------------------------------------------------------------
    def read_patient(self, principal: Principal, patient_id: str) -> dict[str, Any]:
        """Clinicians with a permitting treatment consent get identity; admins get the record without it."""
        if principal.role not in ("clinician", "admin"):
            raise Forbidden(f"the role '{principal.role}' may not read patients")
        # NotFound is raised after the transaction commits: raised inside it, the deny audit would roll back.
        with self.rt.sessions.begin() as session:
            patient = session.execute(select(m.Patient).where(m.Patient.id == patient_id)).scalar_one_or_none()
            resource: dict[str, Any] = {"resourceType": "Patient", "id": patient_id, "active": bool(patient and patient.active)}
            if principal.role == "admin":
                audit.append(session, self.rt.keys, [audit.Entry(principal.id, principal.role, "read", "permit" if patient else "deny", patient_key=patient.patient_key if patient else None, entity=f"Patient/{patient_id}", detail="no identity disclosed")])
                permit = patient is not None
            else:
                purpose = self._purpose(principal)
                decision = self.decide(session, purpose, patient.patient_key, None) if patient else None
                permit = bool(decision and decision.permit)
                audit.append(session, self.rt.keys, [audit.Entry(principal.id, principal.role, "re-identify", "permit" if permit else "deny", purpose=purpose, patient_key=patient.patient_key if patient else None, entity=f"Patient/{patient_id}", detail=decision.reason if decision else "no such patient")])
                vault = session.get(m.Identity, patient.patient_key) if patient is not None and permit else None
                if vault is not None:
                    ident = open_identity(SealedIdentity(vault.kid, vault.nonce, vault.ciphertext), patient.patient_key, self.rt.keys)
                    resource["identifier"] = [{"system": CPR_SYSTEM, "value": ident.cpr}]
                    if ident.name:
                        resource["name"] = [ident.name]
        if patient is None or not permit:
            raise NotFound("Patient", patient_id)
        return resource


def _has_word(column: Any, word: str) -> ColumnElement[bool]:
    """Whether a space-separated column holds ``word`` as a whole word."""
    return or_(column == word, column.like(f"{word} %"), column.like(f"% {word}"), column.like(f"% {word} %"))


def _code_clause(token: Token) -> ColumnElement[bool]:
    """A code token: through the terminology to the indexed primary codes where it can, else on all codings."""
    if token.system == "":
        return false()  # every coding the platform stores has a system
    found = terminology.matching(token.system, token.code)
    if found:
        return m.Observation.code.in_(sorted({mm.primary_code for mm in found}))
    if token.system:
        return _has_word(m.Observation.codes, f"{token.system}|{token.code}")
    return or_(m.Observation.codes.like(f"%|{token.code} %"), m.Observation.codes.like(f"%|{token.code}"))


def _bundle(base_url: str, resource_type: str, query_items: list[tuple[str, str]], q: ObservationQuery, total: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    def link(offset: int) -> str:
        items = [(k, v) for k, v in query_items if k not in ("_offset", "_count")]
        items += [("_count", str(q.count)), ("_offset", str(offset))]
        return f"{base_url}/{resource_type}?{urlencode(items)}"

    links = [{"relation": "self", "url": link(q.offset)}]
    # _count=0 asks for the total only: a next/previous link would point at this page again, forever.
    if q.count > 0 and q.offset + q.count < total:
        links.append({"relation": "next", "url": link(q.offset + q.count)})
    if q.count > 0 and q.offset > 0:
        links.append({"relation": "previous", "url": link(max(q.offset - q.count, 0))})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [
            {"fullUrl": f"{base_url}/{resource_type}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }
