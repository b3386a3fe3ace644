"""The access layer: the one enforcement point every read of patient data goes through.

It authenticates nothing (the API does that); given a principal it decides, per patient, from the
patient's consents (``homediag.consent``) and the principal's role and purpose, what may be seen.
Searches are narrowed in SQL before counting and paging, so totals and links show only what is
permitted. A resource that may not be seen answers exactly as one that does not exist. Every
decision, permit and deny, is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.orm import Session

from homediag import consent as consent_model
from homediag.errors import Forbidden, NotFound
from homediag.fhir_profiles import terminology
from homediag.fhir_profiles.profiles import CANONICAL

from . import audit, care
from .clock import from_store, to_store
from .domains import Domain, NotAPseudonym, domain_for
from .identity import CPR_SYSTEM, SealedIdentity, open_identity
from .runtime import Runtime
from .search_params import ObservationQuery, Token
from .store import models as m
from .users import Principal

# Roles that may read clinical values, and the purposes of use (v3-ActReason) each may state; the first is the default.
ROLE_PURPOSES: dict[str, tuple[str, ...]] = {"clinician": ("TREAT",), "evaluator": ("HRESCH",), "vendor": ("HTEST",)}
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


@dataclass(frozen=True)
class View:
    """Who reads, under which purpose, and in which pseudonym domain (None: care, the platform's own ids)."""

    principal: Principal
    purpose: str
    domain: Domain | None

    def real_id(self, kind: str, shown: str) -> str | None:
        """The platform id behind an id the reader gave (its pseudonym outside care); None if it is none."""
        if self.domain is None:
            return shown
        try:
            return self.domain.resolve(kind, shown)
        except NotAPseudonym:
            return None

    def shown(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The resource as this reader may see it: outside care every id becomes a domain pseudonym and
        identifiers (which would link domains) are left out."""
        if self.domain is None:
            return resource
        domain = self.domain

        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                out = {}
                for key, value in node.items():
                    if key == "identifier":
                        continue
                    if key == "reference" and isinstance(value, str) and (match := _REFERENCE.match(value)):
                        out[key] = f"{match[1]}/{domain.pseudonym(match[1], match[2])}"
                    else:
                        out[key] = walk(value)
                return out
            if isinstance(node, list):
                return [walk(item) for item in node]
            return node

        out = walk(resource)
        out["id"] = domain.pseudonym(str(resource["resourceType"]), str(resource["id"]))
        return dict(out)


@dataclass(frozen=True)
class Window:
    """Data times a reader may see for one patient: a union of [start, end), naive UTC, None = open."""

    intervals: tuple[tuple[datetime | None, datetime | None], ...]

    @classmethod
    def of(cls, window: consent_model.DataWindow) -> Window:
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
    def view(self, principal: Principal, requested_purpose: str | None = None) -> View:
        """The reader's view; the purpose of use stated with the request must be one the role may use."""
        allowed = ROLE_PURPOSES.get(principal.role)
        if not allowed:
            raise Forbidden(f"the role '{principal.role}' may not read clinical data")
        purpose = requested_purpose or allowed[0]
        if purpose not in allowed:
            raise Forbidden(
                f"the role '{principal.role}' may not act for purpose of use {purpose!r} (allowed: {', '.join(allowed)})"
            )
        domain = (
            None
            if principal.role == "clinician"
            else domain_for(self.rt.keys, f"{principal.role}:{principal.organisation or principal.id}")
        )
        return View(principal, purpose, domain)

    def _in_care(self, session: Session, view: View, windows: dict[str, Window]) -> dict[str, Window]:
        """A clinician reads only patients on its care teams (consent permitting)."""
        if view.principal.role != "clinician" or not windows:
            return windows
        team = set(
            session.execute(
                care.team_patient_keys(view.principal.id).where(m.CareTeamPatient.patient_key.in_(list(windows)))
            ).scalars()
        )
        return {k: w for k, w in windows.items() if k in team}

    def _relation_reason(self, session: Session, view: View, pkey: str) -> str | None:
        if view.principal.role == "clinician" and not care.on_care_team(session, view.principal.id, pkey):
            return "the patient is not on a care team of this clinician"
        return None

    def _decide_for(
        self, session: Session, view: View, pkey: str, data_time: datetime | None
    ) -> consent_model.Decision:
        """The reader's relation to the patient (care team), then the patient's consent for the purpose."""
        reason = self._relation_reason(session, view, pkey)
        if reason is not None:
            return consent_model.Decision(False, reason)
        return self.decide(session, view.purpose, pkey, data_time)

    def _vendor_scope(self, view: View) -> ColumnElement[bool]:
        """A vendor sees only readings of its own organisation's devices."""
        if view.principal.role != "vendor":
            return true()
        return m.Observation.device_id.in_(
            select(m.Device.id).where(m.Device.manufacturer == view.principal.organisation)
        )

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
            for cid, version, resource in session.execute(
                select(m.Consent.id, m.Consent.version, m.Consent.resource).where(m.Consent.id.in_(missing))
            ):
                cache[(cid, version)] = consent_model.parse_consent(resource)
        out: dict[str, list[Any]] = {}
        for row in current:
            record = cache.get((row.id, row.version))
            if record is None:  # changed between the two reads: parse it now
                resource = session.execute(select(m.Consent.resource).where(m.Consent.id == row.id)).scalar_one()
                record = consent_model.parse_consent(resource)
            out.setdefault(row.patient_key, []).append(record)
        return out

    def permitted_windows(
        self, session: Session, purpose: str, patient_keys: list[str] | None = None
    ) -> dict[str, Window]:
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
    def read_observation(self, principal: Principal, observation_id: str, purpose: str | None = None) -> dict[str, Any]:
        view = self.view(principal, purpose)
        real_id = view.real_id("Observation", observation_id)
        # NotFound is raised after the transaction commits: raised inside it, the deny audit would roll back.
        seen: dict[str, Any] | None = None
        with self.rt.sessions.begin() as session:
            row = None
            if real_id is not None:
                row = session.execute(
                    select(m.Observation).where(m.Observation.id == real_id, self._vendor_scope(view))
                ).scalar_one_or_none()
            if row is None:
                audit.append(
                    session,
                    self.rt.keys,
                    [
                        audit.Entry(
                            principal.id,
                            principal.role,
                            "read",
                            "deny",
                            purpose=view.purpose,
                            entity=f"Observation/{observation_id}",
                            detail="no such resource",
                        )
                    ],
                )
            else:
                decision = self._decide_for(session, view, row.patient_key, from_store(row.effective_start))
                audit.append(
                    session,
                    self.rt.keys,
                    [
                        audit.Entry(
                            principal.id,
                            principal.role,
                            "read",
                            "permit" if decision.permit else "deny",
                            purpose=view.purpose,
                            patient_key=row.patient_key,
                            entity=f"Observation/{row.id}",
                            detail=decision.reason,
                        )
                    ],
                )
                if decision.permit:
                    seen = row.resource
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
            entries: list[audit.Entry] = []
            if q.patient_ids:
                patient_id = view.real_id("Patient", q.patient_ids[0])
                named_key = (
                    session.execute(
                        select(m.Patient.patient_key).where(m.Patient.id == patient_id)
                    ).scalar_one_or_none()
                    if patient_id
                    else None
                )
                windows = (
                    self._in_care(session, view, self.permitted_windows(session, view.purpose, [named_key]))
                    if named_key
                    else {}
                )
                if named_key is not None and named_key not in windows:
                    reason = (
                        self._relation_reason(session, view, named_key)
                        or self.decide(session, view.purpose, named_key, None).reason
                    )
                    entries.append(
                        audit.Entry(
                            principal.id,
                            principal.role,
                            "search",
                            "deny",
                            purpose=view.purpose,
                            patient_key=named_key,
                            entity="Observation",
                            detail=reason,
                        )
                    )
            else:
                windows = self._in_care(session, view, self.permitted_windows(session, view.purpose))

            devices = [d for d in (view.real_id("Device", shown) for shown in q.device_ids)]
            filters = [self._scope(windows), self._vendor_scope(view), *self._filters(session, q, devices)]
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
                entries.append(
                    audit.Entry(
                        principal.id,
                        principal.role,
                        "search",
                        "permit",
                        purpose=view.purpose,
                        patient_key=pkey,
                        entity="Observation",
                        detail=f"{sum(1 for r in rows if r.patient_key == pkey)} returned",
                    )
                )
            if not entries:
                entries.append(
                    audit.Entry(
                        principal.id,
                        principal.role,
                        "search",
                        "permit",
                        purpose=view.purpose,
                        entity="Observation",
                        detail="0 returned",
                    )
                )
            audit.append(session, self.rt.keys, entries)
        return _bundle(base_url, "Observation", query_items, q, total, [view.shown(r.resource) for r in rows])

    def _scope(self, windows: dict[str, Window]) -> ColumnElement[bool]:
        if not windows:
            return false()
        open_keys = [k for k, w in windows.items() if w.is_open]
        clauses: list[ColumnElement[bool]] = []
        if open_keys:
            clauses.append(m.Observation.patient_key.in_(open_keys))
        clauses += [and_(m.Observation.patient_key == k, w.sql()) for k, w in windows.items() if k not in open_keys]
        return or_(*clauses)

    def _filters(
        self, session: Session, q: ObservationQuery, device_ids: list[str | None]
    ) -> list[ColumnElement[bool]]:
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

    # -- a gateway's read-back ---------------------------------------------------------------
    def gateway_read_back(self, session: Session, sender: Principal, observation_id: str) -> dict[str, Any] | None:
        """The stored Observation a gateway's conditional create matched, when this gateway sent it itself
        (a gateway writes; it reads back only its own uploads). None otherwise. Decided and audited here,
        inside the caller's unit of work."""
        row = session.get(m.Observation, observation_id)
        sent_by = session.get(m.Upload, row.upload_id).sender if row is not None and row.upload_id else None
        permit = row is not None and sent_by == sender.id
        detail = "sent by this gateway" if permit else "not sent by this gateway"
        audit.append(
            session,
            self.rt.keys,
            [
                audit.Entry(
                    sender.id,
                    sender.role,
                    "read-back",
                    "permit" if permit else "deny",
                    patient_key=row.patient_key if row is not None else None,
                    entity=f"Observation/{observation_id}",
                    detail=detail,
                )
            ],
        )
        return row.resource if permit and row is not None else None

    # -- Patient ---------------------------------------------------------------------------
    def read_patient(
        self, principal: Principal, patient_id: str, *, purpose: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Who the patient is, as far as the reader may know.

        A clinician whose patient's consent permits treatment gets the identity (CPR and name) only with
        a stated reason, which is audited as a re-identification; without one, the record without
        identity. Evaluators and vendors get the patient's pseudonym of their domain; admins the
        record without identity. Anyone else: 403.
        """
        if principal.role == "admin":
            view = None
        elif principal.role in ROLE_PURPOSES:
            view = self.view(principal, purpose)
        else:
            raise Forbidden(f"the role '{principal.role}' may not read patients")
        real_id = view.real_id("Patient", patient_id) if view else patient_id
        # NotFound is raised after the transaction commits: raised inside it, the deny audit would roll back.
        with self.rt.sessions.begin() as session:
            patient = (
                session.execute(select(m.Patient).where(m.Patient.id == real_id)).scalar_one_or_none()
                if real_id
                else None
            )
            pkey = patient.patient_key if patient else None
            resource: dict[str, Any] = {
                "resourceType": "Patient",
                "id": real_id,
                "active": bool(patient and patient.active),
            }
            if view is None:
                audit.append(
                    session,
                    self.rt.keys,
                    [
                        audit.Entry(
                            principal.id,
                            principal.role,
                            "read",
                            "permit" if patient else "deny",
                            patient_key=pkey,
                            entity=f"Patient/{real_id}",
                            detail="no identity disclosed",
                        )
                    ],
                )
                permit = patient is not None
            else:
                decision = self._decide_for(session, view, pkey, None) if pkey else None
                permit = bool(decision and decision.permit)
                asks_identity = view.domain is None and bool(reason)
                identify = permit and asks_identity
                action = "re-identify" if asks_identity else "read"
                detail = (decision.reason if decision is not None else "no such patient") + (
                    f"; reason: {reason}" if identify else ""
                )
                audit.append(
                    session,
                    self.rt.keys,
                    [
                        audit.Entry(
                            principal.id,
                            principal.role,
                            action,
                            "permit" if permit else "deny",
                            purpose=view.purpose,
                            patient_key=pkey,
                            entity=f"Patient/{real_id}",
                            detail=detail[:1000],
                        )
                    ],
                )
                vault = session.get(m.Identity, pkey) if identify else None
                if vault is not None and pkey is not None:
                    ident = open_identity(SealedIdentity(vault.kid, vault.nonce, vault.ciphertext), pkey, self.rt.keys)
                    resource["identifier"] = [{"system": CPR_SYSTEM, "value": ident.cpr}]
                    if ident.name:
                        resource["name"] = [ident.name]
                elif permit and view.domain is None:
                    resource["meta"] = {
                        "tag": [
                            {
                                "system": f"{CANONICAL}/CodeSystem/disclosure",
                                "code": "identity-withheld",
                                "display": "identity is shown with a stated reason (X-Reidentification-Reason)",
                            }
                        ]
                    }
        if patient is None or not permit:
            raise NotFound.resource("Patient", patient_id)
        return view.shown(resource) if view else resource


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


def _bundle(
    base_url: str,
    resource_type: str,
    query_items: list[tuple[str, str]],
    q: ObservationQuery,
    total: int,
    resources: list[dict[str, Any]],
) -> dict[str, Any]:
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
