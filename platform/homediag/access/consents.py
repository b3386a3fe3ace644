"""Consent reads (administrators): a consent, its versions, a patient's consents. Audited, since a
consent says what a patient agreed to."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from homediag.errors import Forbidden, NotFound
from homediag.store import models as m
from homediag.users import Principal

from .decisions import Decisions


class ConsentReads(Decisions):
    def _admin_only(self, principal: Principal) -> None:
        if principal.role != "admin":
            raise Forbidden(f"the role '{principal.role}' may not read consents")

    def read_consent(self, principal: Principal, consent_id: str) -> dict[str, Any]:
        self._admin_only(principal)
        with self.rt.sessions.begin() as session:
            row = session.get(m.Consent, consent_id)
            outcome = "permit" if row is not None else "deny"
            self._audit(
                session,
                principal,
                "read",
                outcome,
                patient_key=row.patient_key if row is not None else None,
                entity=f"Consent/{consent_id}",
                detail=None if row is not None else "no such resource",
            )
            resource = row.resource if row is not None else None
        if resource is None:
            raise NotFound.resource("Consent", consent_id)
        return resource

    def read_consent_version(self, principal: Principal, consent_id: str, version: str) -> dict[str, Any]:
        """vread: every version of a consent is kept (``consent_version``)."""
        self._admin_only(principal)
        number = int(version) if version.isascii() and version.isdigit() and len(version) < 9 else None
        with self.rt.sessions.begin() as session:
            row = session.get(m.ConsentVersion, (consent_id, number)) if number is not None else None
            pkey = session.execute(select(m.Consent.patient_key).where(m.Consent.id == consent_id)).scalar()
            self._audit(
                session,
                principal,
                "read",
                "permit" if row is not None else "deny",
                patient_key=pkey,
                entity=f"Consent/{consent_id}/_history/{number}",
                detail=None if row is not None else "no such version",
            )
            resource = row.resource if row is not None else None
        if resource is None:
            raise NotFound(f"Consent/{consent_id} has no version {version[:20]}")
        return resource

    def consent_history(self, principal: Principal, consent_id: str) -> list[dict[str, Any]]:
        self._admin_only(principal)
        with self.rt.sessions.begin() as session:
            rows = (
                session.execute(
                    select(m.ConsentVersion)
                    .where(m.ConsentVersion.consent_id == consent_id)
                    .order_by(m.ConsentVersion.version.desc())
                )
                .scalars()
                .all()
            )
            pkey = session.execute(select(m.Consent.patient_key).where(m.Consent.id == consent_id)).scalar()
            self._audit(
                session,
                principal,
                "history",
                "permit" if rows else "deny",
                patient_key=pkey,
                entity=f"Consent/{consent_id}",
                detail=f"{len(rows)} version(s)" if rows else "no such resource",
            )
            versions = [r.resource for r in rows]
        if not versions:
            raise NotFound.resource("Consent", consent_id)
        return versions

    def search_consents(self, principal: Principal, patient_id: str | None) -> list[dict[str, Any]]:
        self._admin_only(principal)
        with self.rt.sessions.begin() as session:
            stmt = (
                select(m.Consent.patient_key, m.Consent.resource)
                .join(m.Patient, m.Patient.patient_key == m.Consent.patient_key)
                .order_by(m.Consent.recorded_at)
            )
            if patient_id is not None:
                stmt = stmt.where(m.Patient.id == patient_id)
            rows = session.execute(stmt).all()
            named = (
                session.execute(select(m.Patient.patient_key).where(m.Patient.id == patient_id)).scalar()
                if patient_id is not None
                else None
            )
            for pkey in sorted({r.patient_key for r in rows}) or [named]:
                count = sum(1 for r in rows if r.patient_key == pkey)
                self._audit(
                    session,
                    principal,
                    "search",
                    "permit",
                    patient_key=pkey,
                    entity="Consent",
                    detail=f"{count} returned",
                )
            return [r.resource for r in rows]
