"""Export jobs in the ``export_job`` table: creation, progress, status, manifest, cancellation and expiry.

A job's files live in ``<export_dir>/<job id>/`` and are named ``<Type>-<n>.ndjson``. ``progress`` says,
per resource type, how far the job got: the cursor (the last id written), the files written with their
counts, and whether the type is done. A file is recorded only after it is whole on disk, so a job
resumes after a restart by rewriting at most the one file it was writing.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from homediag.clock import from_store, to_store
from homediag.runtime import Runtime
from homediag.settings import Settings
from homediag.store import models as m
from homediag.users import Principal

from .request import ExportRequest

ACTIVE = ("queued", "running")
FILE_MEDIA_TYPE = "application/fhir+ndjson"


@dataclass(frozen=True)
class JobSpec:
    """What a job asks for, as the access layer reads it (a detached copy of the row)."""

    id: str
    owner: Principal
    purpose: str
    level: str
    group_id: str | None
    types: tuple[str, ...]
    since: datetime | None
    transaction_time: datetime  # naive UTC: only what the platform had received by then is exported
    type_filters: tuple[str, ...] = ()  # Observation _typeFilter queries, ORed
    elements: tuple[tuple[str | None, str], ...] = ()  # _elements: (type or None, element)
    patients: tuple[str, ...] | None = None  # POST's patient ids as the owner gave them (its pseudonyms)

    @classmethod
    def of(cls, job: m.ExportJob) -> JobSpec:
        owner = Principal(job.owner, job.owner, job.role, job.organisation)
        asked = job.progress.get("request", {})  # kept in the job's JSON (no column of its own)
        patients = asked.get("patients")
        return cls(
            job.id,
            owner,
            job.purpose,
            job.level,
            job.group_id,
            tuple(job.types.split(",")),
            job.since,
            job.transaction_time,
            tuple(asked.get("typeFilter", ())),
            tuple((kind, element) for kind, element in asked.get("elements", ())),
            tuple(patients) if patients is not None else None,
        )


def now_of(rt: Runtime) -> datetime:
    """The runtime's clock as naive UTC (a test pins it to expire jobs)."""
    return to_store(rt.clock())


def create(session: Session, rt: Runtime, principal: Principal, purpose: str, req: ExportRequest) -> m.ExportJob:
    now = now_of(rt)
    job = m.ExportJob(
        id=str(uuid.uuid4()),
        owner=principal.id,
        role=principal.role,
        organisation=principal.organisation,
        purpose=purpose,
        level=req.level,
        group_id=req.group_id,
        types=",".join(req.types),
        since=req.since,
        request=req.request_url,
        status="queued",
        transaction_time=now,
        created_at=now,
        updated_at=now,
        progress={
            "types": {t: {"cursor": None, "files": [], "done": False} for t in req.types},
            "request": {
                "typeFilter": list(req.type_filters),
                "elements": [list(e) for e in req.elements],
                "patients": list(req.patients) if req.patients is not None else None,
            },
        },
    )
    session.add(job)
    return job


def directory(settings: Settings, job_id: str) -> Path:
    return Path(settings.export_dir) / job_id


def owned(session: Session, job_id: str, principal: Principal) -> m.ExportJob | None:
    """The caller's own job, while it is not cancelled or expired (anyone else's answers as unknown)."""
    job = session.get(m.ExportJob, job_id)
    if job is None or job.owner != principal.id or job.status in ("cancelled", "expired"):
        return None
    return job


def file_names(job: m.ExportJob) -> list[str]:
    return [f["name"] for state in job.progress["types"].values() for f in state["files"]]


def counts(job: m.ExportJob) -> dict[str, int]:
    return {t: sum(f["count"] for f in state["files"]) for t, state in job.progress["types"].items()}


def progress_text(job: m.ExportJob) -> str:
    """What ``X-Progress`` says while a job runs."""
    done = [t for t, s in job.progress["types"].items() if s["done"]]
    parts = [f"{t} {n}" for t, n in counts(job).items()]
    return f"{job.status}: {len(done)} of {len(job.progress['types'])} types done; resources so far: " + ", ".join(
        parts
    )


def manifest(job: m.ExportJob, base: str) -> dict[str, Any]:
    """The complete-status body (Bulk Data IG 2.0): one output entry per file, with its count."""
    output = [
        {"type": kind, "url": f"{base}/bulk-files/{job.id}/{f['name']}", "count": f["count"]}
        for kind, state in job.progress["types"].items()
        for f in state["files"]
    ]
    return {
        "transactionTime": from_store(job.transaction_time).isoformat().replace("+00:00", "Z"),
        "request": job.request,
        "requiresAccessToken": True,
        "output": output,
        "error": [],
    }


def remove_files(settings: Settings, job_id: str) -> None:
    shutil.rmtree(directory(settings, job_id), ignore_errors=True)


def claim(rt: Runtime, worker: str) -> str | None:
    """Take the oldest job that is queued, or running without a live lease (its worker stopped), for ``worker``."""
    now = now_of(rt)
    lease = now + timedelta(seconds=rt.settings.export_lease_seconds)
    with rt.sessions.begin() as session:
        candidates = session.execute(
            select(m.ExportJob.id)
            .where(
                m.ExportJob.status.in_(ACTIVE), or_(m.ExportJob.lease_until.is_(None), m.ExportJob.lease_until < now)
            )
            .order_by(m.ExportJob.created_at)
            .limit(5)
        ).scalars()
        for job_id in list(candidates):
            taken = session.execute(
                update(m.ExportJob)
                .where(
                    m.ExportJob.id == job_id,
                    m.ExportJob.status.in_(ACTIVE),
                    or_(m.ExportJob.lease_until.is_(None), m.ExportJob.lease_until < now),
                )
                .values(lease_until=lease, status="running", updated_at=now)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return job_id
    return None


def expire(rt: Runtime) -> list[str]:
    """Remove the files of finished jobs past their expiry (and of cancelled ones); returns the expired ids."""
    now = now_of(rt)
    with rt.sessions.begin() as session:
        due = list(
            session.execute(
                select(m.ExportJob).where(m.ExportJob.status.in_(("completed", "failed")), m.ExportJob.expires_at < now)
            ).scalars()
        )
        for job in due:
            job.status, job.updated_at = "expired", now
        gone = {
            job_id
            for job_id in session.execute(
                select(m.ExportJob.id).where(m.ExportJob.status.in_(("cancelled", "expired")))
            ).scalars()
        }
    root = Path(rt.settings.export_dir)
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and child.name in gone:
                shutil.rmtree(child, ignore_errors=True)
    return [job.id for job in due]
