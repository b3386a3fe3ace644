"""Reading the audit log (administrators) as FHIR AuditEvent resources. The read is audited itself:
who looked at whose trail is part of the trail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from homediag import audit
from homediag.errors import Forbidden
from homediag.store import models as m
from homediag.users import Principal

from .decisions import Decisions


@dataclass(frozen=True)
class AuditPage:
    total: int
    events: list[dict[str, Any]]


class AuditLogReads(Decisions):
    def search_audit_events(
        self, principal: Principal, *, patient_id: str | None, action: str | None, count: int, offset: int
    ) -> AuditPage:
        if principal.role != "admin":
            raise Forbidden(f"the role '{principal.role}' may not read the audit log")
        with self.rt.sessions.begin() as session:
            stmt = select(m.AuditEvent, m.Patient.id).outerjoin(
                m.Patient, m.Patient.patient_key == m.AuditEvent.patient_key
            )
            if patient_id is not None:
                stmt = stmt.where(m.Patient.id == patient_id)
            if action is not None:
                stmt = stmt.where(m.AuditEvent.action == action)
            total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
            rows = session.execute(stmt.order_by(m.AuditEvent.seq.desc()).offset(offset).limit(count)).all()
            events = [audit.as_fhir(row, pid) for row, pid in rows]
            pkey = (
                session.execute(select(m.Patient.patient_key).where(m.Patient.id == patient_id)).scalar()
                if patient_id is not None
                else None
            )
            criteria = ", ".join(f"{k}={v}" for k, v in (("patient", patient_id), ("type", action)) if v) or "all"
            self._audit(
                session,
                principal,
                "search",
                "permit",
                patient_key=pkey,
                entity="AuditEvent",
                detail=f"{len(events)} of {total} returned ({criteria}), offset {offset}",
            )
        return AuditPage(total, events)
