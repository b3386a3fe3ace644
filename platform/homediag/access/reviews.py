"""Reviews (acknowledgements) of a clinician's patients' readings: one reading or more, or every green one of a
period, kept as a FHIR Task and Provenance (``homediag.monitoring.reviews``) with each reading's times; and the
reads of those Tasks and Provenances. Decided as a read of the patient (care team, consent for treatment, its data
window: what may not be seen answers 404), then an audited write.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from homediag.clock import to_store
from homediag.errors import BadRequest, NotFound, Unprocessable
from homediag.monitoring import store
from homediag.monitoring.reviews import review_resources
from homediag.monitoring.triage import Colour
from homediag.store import models as m
from homediag.users import Principal

from .monitoring import MonitoringReads, _check_period, review_summary
from .patients import _said
from .view import View


class ReviewReads(MonitoringReads):
    def acknowledge(
        self,
        principal: Principal,
        patient_id: str,
        *,
        observation_ids: Sequence[str] | None = None,
        all_green: tuple[datetime, datetime] | None = None,
        note: str | None = None,
        purpose: str | None = None,
    ) -> dict[str, Any]:
        """Acknowledge readings of a patient: the ones named, or every green one of a period not yet acknowledged.
        Stored as a Task and a Provenance, with each reading's times; audited. Answers the Task."""
        view = self._clinician_view(principal, purpose)
        if (observation_ids is None) == (all_green is None):
            raise BadRequest("name the readings to acknowledge ('observations'), or ask for all green of a period")
        if note is not None and len(note) > 2000:
            raise BadRequest(f"the note is {len(note)} characters; at most 2000", "note")
        if observation_ids is not None and not observation_ids:
            raise BadRequest("'observations' is empty: name at least one reading", "observations")
        task: dict[str, Any] | None = None
        problem: Unprocessable | None = None
        with self.rt.sessions.begin() as session:
            found = self._patient_scope(session, view, patient_id, "acknowledge")
            if found is not None:
                pkey, scope = found
                now = self.rt.clock()
                if all_green is not None:
                    _check_period(*all_green)
                    chosen = [
                        r
                        for r in store.triaged_readings(session, pkey, all_green[0], all_green[1], scope)
                        if r.colour == Colour.GREEN and not r.acknowledged
                    ]
                    if not chosen:
                        problem = Unprocessable("there is no unacknowledged green reading in that period", "period")
                else:
                    wanted = list(dict.fromkeys(observation_ids or ()))
                    chosen = store.triaged_readings(
                        session, pkey, store.EPOCH, now + timedelta(days=1), scope, ids=wanted
                    )
                    missing = sorted(set(wanted) - {r.id for r in chosen})
                    if missing:
                        problem = Unprocessable(
                            f"not readings of Patient/{patient_id} this clinician may see: "
                            + ", ".join(f"Observation/{x}" for x in missing[:10]),
                            "observations",
                        )
                if problem is None:
                    task = self._store_review(
                        session,
                        principal,
                        view,
                        patient_id,
                        pkey,
                        chosen,
                        note,
                        now,
                        "all-green" if all_green is not None else "readings",
                    )
        if problem is not None:
            raise problem
        if task is None:
            raise NotFound.resource("Patient", _said(patient_id))
        return task

    def _store_review(
        self,
        session: Session,
        principal: Principal,
        view: View,
        patient_id: str,
        pkey: str,
        chosen: list[store.TriagedReading],
        note: str | None,
        now: datetime,
        scope: str,
    ) -> dict[str, Any]:
        review_id = secrets.token_hex(16)
        task, provenance = review_resources(
            review_id, patient_id, [r.id for r in chosen], principal.id, now, note, scope
        )
        session.add(
            m.Review(
                id=review_id,
                patient_key=pkey,
                reviewed_at=to_store(now),
                reviewed_by=principal.id,
                scope=scope,
                note=note,
                task=task,
                provenance=provenance,
            )
        )
        session.flush()
        for r in chosen:
            session.add(
                m.ReviewItem(
                    review_id=review_id,
                    observation_id=r.id,
                    patient_key=pkey,
                    colour=r.colour.value,
                    effective_at=to_store(r.effective),
                    received_at=to_store(r.received_at) if r.received_at else None,
                    gateway_received_at=to_store(r.gateway_received_at) if r.gateway_received_at else None,
                    reviewed_at=to_store(now),
                )
            )
        self._audit(
            session,
            principal,
            "acknowledge",
            "done",
            purpose=view.purpose,
            patient_key=pkey,
            entity=f"Task/{review_id}",
            detail=f"{len(chosen)} reading(s), {scope}",
        )
        return task

    def last_review(self, principal: Principal, patient_id: str, purpose: str | None = None) -> dict[str, Any] | None:
        view = self._clinician_view(principal, purpose)
        found_any = False
        out: dict[str, Any] | None = None
        with self.rt.sessions.begin() as session:
            found = self._patient_scope(session, view, patient_id, "monitoring-last-review")
            if found is not None:
                found_any = True
                pkey, _scope = found
                out = review_summary(store.last_review(session, pkey))
                self._audit(
                    session,
                    principal,
                    "monitoring-last-review",
                    "permit",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity=f"Patient/{_said(patient_id)}",
                )
        if not found_any:
            raise NotFound.resource("Patient", _said(patient_id))
        return out

    def _review_resource(self, principal: Principal, kind: str, review_id: str, purpose: str | None) -> dict[str, Any]:
        view = self._clinician_view(principal, purpose)
        out: dict[str, Any] | None = None
        with self.rt.sessions.begin() as session:
            review = session.get(m.Review, review_id)
            if review is None:
                self._audit(
                    session,
                    principal,
                    "read",
                    "deny",
                    purpose=view.purpose,
                    entity=f"{kind}/{review_id}",
                    detail="no such resource",
                )
            else:
                windows = self.readable_windows(session, view, [review.patient_key])
                permit = review.patient_key in windows
                reason = (
                    None
                    if permit
                    else (
                        self._relation_reason(session, view, review.patient_key)
                        or self.decide(session, view.purpose, review.patient_key, None).reason
                    )
                )
                self._audit(
                    session,
                    principal,
                    "read",
                    "permit" if permit else "deny",
                    purpose=view.purpose,
                    patient_key=review.patient_key,
                    entity=f"{kind}/{review_id}",
                    detail=reason,
                )
                if permit:
                    out = review.task if kind == "Task" else review.provenance
        if out is None:
            raise NotFound.resource(kind, review_id)
        return out

    def read_task(self, principal: Principal, task_id: str, purpose: str | None = None) -> dict[str, Any]:
        return self._review_resource(principal, "Task", task_id, purpose)

    def read_provenance(self, principal: Principal, provenance_id: str, purpose: str | None = None) -> dict[str, Any]:
        return self._review_resource(principal, "Provenance", provenance_id, purpose)

    def search_reviews(
        self, principal: Principal, kind: str, patient_id: str | None, purpose: str | None = None
    ) -> list[dict[str, Any]]:
        """Tasks or Provenances of reviews of the patients the clinician may see (one patient, or all), newest
        first."""
        view = self._clinician_view(principal, purpose)
        with self.rt.sessions.begin() as session:
            if patient_id is not None:
                found = self._patient_scope(session, view, patient_id, "search")
                keys = [found[0]] if found is not None else []
            else:
                keys = list(self.readable_windows(session, view))
            rows = (
                session.execute(
                    select(m.Review).where(m.Review.patient_key.in_(keys)).order_by(m.Review.reviewed_at.desc())
                )
                .scalars()
                .all()
                if keys
                else []
            )
            self._audit_returned(session, principal, view.purpose, kind, [r.patient_key for r in rows])
            return [r.task if kind == "Task" else r.provenance for r in rows]
