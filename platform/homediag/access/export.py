"""Bulk Data export reads: who may export, which patients and resources a job holds, and the audit of it.

Only an evaluator exports (purpose of use HRESCH), in its own pseudonym domain: a job holds only patients
whose consent permits research use now, and of them only Observations whose own (effective) time the
consent covers; a Group export only the patients of that pilot; a POST kick-off's ``patient`` references
only those of the named patients that the export could hold anyway (a patient named who is unknown, without
consent, withdrawn or outside the group is simply not there: no error, no hint). A ``_typeFilter`` narrows
the Observations with the Observation search's criteria in SQL (dates in the reader's shifted time, ids its
pseudonyms); ``_elements`` leaves out what was not asked for (tagged SUBSETTED, the mandatory elements
kept). The decision is taken afresh for every
page a job reads, so a withdrawal takes effect on the job's next page. Every resource is shown through the
reader's ``View`` (the same projection as a search). The audit chain records the kick-off, each file
written (one record per patient in it, with its count: the patient key, never an identity), each download
and cancellation, and the finished job (counts per type, patients, the period of the data).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session

from homediag import versions
from homediag.bulk import jobs
from homediag.bulk.request import ExportRequest, parse_type_filter
from homediag.clock import from_store, utcnow
from homediag.errors import Forbidden, NotFound
from homediag.store import models as m
from homediag.users import Principal

from .decisions import Decisions
from .observations import date_mover, search_filters
from .view import View, Window

EXPORT_ROLES = ("evaluator",)


@dataclass
class Page:
    """One page of a job's resources as the reader may see them, with what the audit needs."""

    resources: list[dict[str, Any]]
    cursor: str | None  # the last platform id read (the next page starts after it)
    per_patient: Counter[str] = field(default_factory=Counter)
    first: datetime | None = None
    last: datetime | None = None


class ExportReads(Decisions):
    def export_view(self, principal: Principal, purpose: str | None = None) -> View:
        if principal.role not in EXPORT_ROLES:
            raise Forbidden(f"the role '{principal.role}' may not export (allowed: {', '.join(EXPORT_ROLES)})")
        return self.view(principal, purpose)

    def start_export(self, principal: Principal, purpose: str | None, req: ExportRequest) -> str:
        """Decide and record a kick-off; returns the new job's id."""
        view = self.export_view(principal, purpose)
        entity = "$export" if req.level == "system" else f"{'Patient' if req.level == 'patient' else 'Group'}/$export"
        with self.rt.sessions.begin() as session:
            known = req.group_id is None or self._pilot_exists(session, req.group_id)
            detail = f"level {req.level}; types {','.join(req.types)}" + (
                f"; since {req.since.isoformat()}Z" if req.since else ""
            )
            if req.type_filters:
                detail += f"; {len(req.type_filters)} _typeFilter"
            if req.elements:
                detail += "; _elements " + ",".join(f"{k}.{e}" if k else e for k, e in req.elements)
            if req.patients is not None:
                detail += f"; {len(req.patients)} patients named"  # how many, never who
            if not known:
                self._audit(session, principal, "export-start", "deny", purpose=view.purpose, entity=entity,
                            detail=f"{detail}; no such group")  # fmt: skip
                job_id = None
            else:
                job = jobs.create(session, self.rt, principal, view.purpose, req)
                job_id = job.id
                self._audit(
                    session, principal, "export-start", "permit", purpose=view.purpose, entity=f"Export/{job.id}",
                    detail=f"{detail}; transaction time {job.transaction_time.isoformat()}Z",
                )  # fmt: skip
                self._audit_named(session, principal, view, job.id, req.patients or ())
        if job_id is None:
            raise NotFound.resource("Group", str(req.group_id))
        return job_id

    def _audit_named(
        self, session: Session, principal: Principal, view: View, job_id: str, named: tuple[str, ...]
    ) -> None:
        """A deny record per named patient of ours whom the export may not hold now (as a search naming a patient
        it may not see records one); the caller is told nothing, the job simply holds nothing of them."""
        ids = [pid for pid in (view.real_id("Patient", shown) for shown in named) if pid is not None]
        if not ids:
            return
        keys = list(session.execute(select(m.Patient.patient_key).where(m.Patient.id.in_(ids))).scalars())
        windows = self.readable_windows(session, view, keys)
        for pkey in sorted(set(keys) - set(windows)):
            reason = self._relation_reason(session, view, pkey) or self.decide(session, view.purpose, pkey, None).reason
            detail = f"named in the kick-off, not exported: {reason}"[:200]
            self._audit(session, principal, "export-start", "deny", purpose=view.purpose, patient_key=pkey,
                        entity=f"Export/{job_id}", detail=detail)  # fmt: skip

    def _pilot_exists(self, session: Session, pilot: str) -> bool:
        if pilot == self.rt.settings.pilot:
            return True
        in_use = select(m.Patient.id).where(m.Patient.pilot == pilot).limit(1)
        team = select(m.CareTeam.id).where(m.CareTeam.pilot == pilot).limit(1)
        return session.execute(in_use).first() is not None or session.execute(team).first() is not None

    # -- Groups: one per pilot ---------------------------------------------------------------------------
    def read_group(self, principal: Principal, purpose: str | None, group_id: str) -> dict[str, Any]:
        """The pilot as a FHIR Group of the patients this evaluator may export now (members as its pseudonyms);
        audited. An unknown pilot answers 404."""
        view = self.export_view(principal, purpose)
        with self.rt.sessions.begin() as session:
            known = self._pilot_exists(session, group_id)
            members: list[str] = []
            if known:
                patients = dict(
                    session.execute(
                        select(m.Patient.patient_key, m.Patient.id).where(m.Patient.pilot == group_id)
                    ).all()
                )
                windows = self.readable_windows(session, view, list(patients))
                members = sorted(patients[k] for k in windows)
            detail = f"{len(members)} members" if known else "no such group"
            self._audit(session, principal, "read", "permit" if known else "deny", purpose=view.purpose,
                        entity=f"Group/{group_id}"[:200], detail=detail)  # fmt: skip
        if not known:
            raise NotFound.resource("Group", group_id)
        # the pilot's name is the Group's id in every domain (it names no one); members are the reader's pseudonyms.
        # The Group is decided now: its version is a digest of what it holds, so it changes when membership does.
        shown = [view.shown_id("Patient", pid) for pid in members]
        digest = hashlib.sha256("\n".join(shown).encode()).hexdigest()[:16]
        return versions.stamp(
            {
                "resourceType": "Group",
                "id": group_id,
                "type": "person",
                "actual": True,
                "name": f"pilot {group_id}: patients whose consent permits research use now",
                "quantity": len(members),
                "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in shown],
            },
            digest,
            utcnow(),
        )

    # -- the job's pages ----------------------------------------------------------------------------
    def _windows(self, session: Session, view: View, job: jobs.JobSpec) -> dict[str, Window]:
        keys: list[str] | None = None
        if job.group_id is not None:
            keys = list(session.execute(select(m.Patient.patient_key).where(m.Patient.pilot == job.group_id)).scalars())
        if job.patients is not None:
            # the owner's references (its pseudonyms); one that names no patient of ours names no one
            named = [pid for pid in (view.real_id("Patient", shown) for shown in job.patients) if pid is not None]
            found = set(session.execute(select(m.Patient.patient_key).where(m.Patient.id.in_(named))).scalars())
            keys = [k for k in keys if k in found] if keys is not None else sorted(found)
        return self.readable_windows(session, view, keys)

    def export_page(self, job: jobs.JobSpec, resource_type: str, after: str | None, limit: int) -> Page:
        """Up to ``limit`` resources of ``resource_type`` after the platform id ``after``, in id order,
        decided now for the job's owner and shown in its domain."""
        view = self.export_view(job.owner, job.purpose)
        with self.rt.sessions() as session:
            user = session.get(m.User, job.owner.id)
            if user is not None and (
                user.revoked_at is not None or (user.expires_at is not None and user.expires_at <= utcnow())
            ):
                raise Forbidden("the job's owner may no longer export: its token was revoked or has expired")
            windows = self._windows(session, view, job)
            if resource_type == "Patient":
                return self._patients(session, view, job, windows, after, limit)
            if resource_type == "Observation":
                return self._observations(session, view, job, windows, after, limit)
        raise ValueError(f"{resource_type} is not exported")

    def _patients(
        self, session: Session, view: View, job: jobs.JobSpec, windows: dict[str, Window], after: str | None, limit: int
    ) -> Page:
        filters: list[ColumnElement[bool]] = [
            m.Patient.patient_key.in_(list(windows)),
            m.Patient.enrolled_at <= job.transaction_time,
        ]
        if job.since is not None:
            filters.append(m.Patient.enrolled_at > job.since)
        if after is not None:
            filters.append(m.Patient.id > after)
        rows = session.execute(
            select(m.Patient.id, m.Patient.patient_key, m.Patient.active)
            .where(*filters)
            .order_by(m.Patient.id)
            .limit(limit)
        ).all()
        page = Page([], rows[-1].id if rows else after)
        for row in rows:
            shown = view.shown({"resourceType": "Patient", "id": row.id, "active": bool(row.active)})
            page.resources.append(subset(shown, job.elements))
            page.per_patient[row.patient_key] += 1
        return page

    def _observations(
        self, session: Session, view: View, job: jobs.JobSpec, windows: dict[str, Window], after: str | None, limit: int
    ) -> Page:
        filters: list[ColumnElement[bool]] = [self.scope(windows), m.Observation.received_at <= job.transaction_time]
        if job.since is not None:
            filters.append(m.Observation.received_at > job.since)
        if job.type_filters:
            filters.append(self._type_filters(session, view, job, windows))
        if after is not None:
            filters.append(m.Observation.id > after)
        rows = session.execute(
            select(m.Observation.id, m.Observation.patient_key, m.Observation.effective_start, m.Observation.resource)
            .where(*filters)
            .order_by(m.Observation.id)
            .limit(limit)
        ).all()
        page = Page([], rows[-1].id if rows else after)
        for row in rows:
            page.resources.append(subset(view.shown(row.resource), job.elements))
            page.per_patient[row.patient_key] += 1
            page.first = row.effective_start if page.first is None else min(page.first, row.effective_start)
            page.last = row.effective_start if page.last is None else max(page.last, row.effective_start)
        return page

    def _type_filters(
        self, session: Session, view: View, job: jobs.JobSpec, windows: dict[str, Window]
    ) -> ColumnElement[bool]:
        """The job's Observation _typeFilters as SQL: each the AND of its criteria, the filters ORed. Ids in them
        are the owner's (pseudonyms), dates in its (shifted) time."""
        moved = date_mover(session, view, windows)
        alternatives: list[ColumnElement[bool]] = []
        for text in job.type_filters:
            q = parse_type_filter(text, self.rt.local_zone)
            devices = [view.real_id("Device", shown) for shown in q.device_ids]
            criteria = search_filters(q, devices, moved)
            for ids in q.ids:
                criteria.append(m.Observation.id.in_([r for r in (view.real_id("Observation", i) for i in ids) if r]))
            for shown in q.patient_ids:
                pid = view.real_id("Patient", shown)
                named = select(m.Patient.patient_key).where(m.Patient.id == pid)
                key = session.execute(named).scalar() if pid else None
                criteria.append(m.Observation.patient_key == key if key is not None else false())
            alternatives.append(and_(*criteria) if criteria else ~false())
        return or_(*alternatives)

    # -- the audit of a job ---------------------------------------------------------------------------
    def audit_export_file(
        self, session: Session, job: jobs.JobSpec, resource_type: str, name: str, per_patient: Counter[str]
    ) -> None:
        """One record per patient in a file just written, in the transaction that records the file."""
        for pkey, count in sorted(per_patient.items()):
            self._audit(
                session, job.owner, "export", "permit", purpose=job.purpose, patient_key=pkey,
                entity=f"Export/{job.id}", detail=f"{count} {resource_type} in {name}",
            )  # fmt: skip

    def audit_export_end(self, session: Session, job: jobs.JobSpec, outcome: str, detail: str) -> None:
        """The job's summary: counts per type, patients, the period of the data; never an identity."""
        self._audit(session, job.owner, "export-end", outcome, purpose=job.purpose, entity=f"Export/{job.id}",
                    detail=detail)  # fmt: skip

    def exported_patients(self, session: Session, job_id: str) -> int:
        """How many patients the job's files hold (from the job's own audit records)."""
        stmt = select(func.count(func.distinct(m.AuditEvent.patient_key))).where(
            m.AuditEvent.action == "export", m.AuditEvent.entity == f"Export/{job_id}"
        )
        return int(session.execute(stmt).scalar_one())

    # -- the owner's status, files and cancellation ---------------------------------------------------
    def export_status(self, principal: Principal, job_id: str) -> m.ExportJob:
        """The caller's own job (detached); another's, a cancelled or an expired one answers 404."""
        self.export_view(principal)
        jobs.expire(self.rt)
        with self.rt.sessions() as session:
            job = jobs.owned(session, job_id, principal)
            if job is None:
                raise NotFound(f"no export job {job_id!r} of this caller (unknown, cancelled or expired)")
            session.expunge(job)
        return job

    def export_file(self, principal: Principal, job_id: str, name: str) -> Path:
        """A file of the caller's own finished job; the download is audited."""
        view = self.export_view(principal)
        jobs.expire(self.rt)
        with self.rt.sessions.begin() as session:
            job = jobs.owned(session, job_id, principal)
            found = job is not None and job.status == "completed" and name in jobs.file_names(job)
            self._audit(session, principal, "export-download", "permit" if found else "deny", purpose=view.purpose,
                        entity=f"Export/{job_id}", detail=name[:200])  # fmt: skip
        path = jobs.directory(self.rt.settings, job_id) / name
        if not found or not path.is_file():
            raise NotFound(f"no file {name!r} in export job {job_id!r} of this caller")
        return path

    def cancel_export(self, principal: Principal, job_id: str) -> None:
        """Cancel the caller's own job (running or finished) and remove its files."""
        view = self.export_view(principal)
        with self.rt.sessions.begin() as session:
            job = jobs.owned(session, job_id, principal)
            if job is not None:
                job.status, job.updated_at, job.lease_until = "cancelled", jobs.now_of(self.rt), None
                self._audit(session, principal, "export-cancel", "permit", purpose=view.purpose,
                            entity=f"Export/{job_id}", detail="files removed")  # fmt: skip
        if job is None:
            raise NotFound(f"no export job {job_id!r} of this caller (unknown, cancelled or expired)")
        jobs.remove_files(self.rt.settings, job_id)


# elements a resource keeps whatever _elements asks (FHIR: mandatory ones SHOULD always be returned)
_KEPT = {"Patient": {"resourceType", "id", "meta"}, "Observation": {"resourceType", "id", "meta", "status", "code"}}
_SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


def subset(resource: dict[str, Any], elements: tuple[tuple[str | None, str], ...]) -> dict[str, Any]:
    """The resource with only the elements ``_elements`` asks for its type (``value`` asks for every
    ``value[x]``), and the mandatory ones; tagged SUBSETTED when something was left out. Unchanged when no
    element is asked for its type (``Observation.value`` leaves a Patient whole)."""
    kind = resource.get("resourceType", "")
    asked = [e for k, e in elements if k in (None, kind)]
    if not asked:
        return resource
    keep = _KEPT.get(kind, {"resourceType", "id", "meta"}) | set(asked)

    def kept(key: str) -> bool:
        return key in keep or any(key.startswith(e) and key[len(e) :][:1].isupper() for e in asked)

    out = {k: v for k, v in resource.items() if kept(k)}
    if out.keys() != resource.keys():
        meta = dict(out.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), _SUBSETTED]
        out["meta"] = meta
    return out


def period_text(first: datetime | None, last: datetime | None) -> str:
    if first is None or last is None:
        return "no data"
    return f"{from_store(first).isoformat()} to {from_store(last).isoformat()}"
