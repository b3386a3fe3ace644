"""The export worker: a background thread, started with the app, that runs queued jobs file by file.

Each file is read page by page through the access layer (decided and shown there) and streamed to disk,
so a job never holds more than a page in memory. When a file is whole it is renamed into place and, in
one transaction, recorded in the job's progress with its audit records; a job stopped at any point (a
restart, a crash) resumes from its last recorded file: the half-written one is removed and rewritten.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm.attributes import flag_modified

from homediag.access import AccessService
from homediag.access.export import period_text
from homediag.errors import ServiceError
from homediag.runtime import Runtime
from homediag.store import models as m

from . import jobs
from .ndjson import remove_parts, write_atomically

log = logging.getLogger(__name__)
PAGE = 1000  # resources read per page: the most a job holds in memory at once
POLL_SECONDS = 5.0


class _Stopped(Exception):
    """The worker is stopping, or the job was cancelled."""


def run_job(rt: Runtime, job_id: str, *, stop: threading.Event | None = None, max_files: int | None = None) -> str:
    """Run (or resume) one job until it is done, cancelled, ``stop`` is set or ``max_files`` files were
    written in this call; returns the job's status then ("running" when it paused)."""
    access = AccessService(rt)
    with rt.sessions.begin() as session:
        row = session.get(m.ExportJob, job_id)
        if row is None or row.status not in jobs.ACTIVE:
            return row.status if row is not None else "unknown"
        row.status = "running"
        spec = jobs.JobSpec.of(row)
        progress: dict[str, Any] = row.progress
    folder = jobs.directory(rt.settings, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    remove_parts(folder)
    written = 0
    try:
        for kind in spec.types:
            state = progress["types"][kind]
            while not state["done"]:
                if (stop is not None and stop.is_set()) or (max_files is not None and written >= max_files):
                    raise _Stopped
                name = f"{kind}-{len(state['files']) + 1}.ndjson"
                limit = rt.settings.export_file_resources
                reader = _FileReader(access, spec, kind, state["cursor"], limit, stop)
                count = write_atomically(folder / name, reader.lines())
                done = count < limit
                with rt.sessions.begin() as session:
                    row = session.get(m.ExportJob, job_id, with_for_update=True)
                    if row is None or row.status != "running":
                        raise _Stopped
                    if count:
                        state["files"].append({"name": name, "count": count})
                        access.audit_export_file(session, spec, kind, name, reader.tally)
                        _widen_progress(progress, reader.span)
                    state["cursor"], state["done"] = reader.cursor, done
                    row.progress = progress
                    flag_modified(row, "progress")
                    row.updated_at = jobs.now_of(rt)
                    row.lease_until = row.updated_at + timedelta(seconds=rt.settings.export_lease_seconds)
                if not count:
                    (folder / name).unlink(missing_ok=True)
                written += 1
        return _finish(rt, access, spec, progress)
    except _Stopped:
        return _release(rt, job_id)
    except FileNotFoundError:  # the job's folder went away: it was cancelled while a file was written
        return _release(rt, job_id)
    except Exception as exc:  # noqa: BLE001 - a job that cannot go on fails with a reason; the worker goes on
        log.exception("export job %s failed", job_id)
        reason = "; ".join(i.diagnostics for i in exc.issues) if isinstance(exc, ServiceError) else type(exc).__name__
        return _fail(rt, access, spec, reason)


class _FileReader:
    """The resources of one file, page by page through the access layer, and what the file's audit needs."""

    def __init__(
        self,
        access: AccessService,
        spec: jobs.JobSpec,
        kind: str,
        cursor: str | None,
        limit: int,
        stop: threading.Event | None,
    ) -> None:
        self.access, self.spec, self.kind, self.cursor, self.limit = access, spec, kind, cursor, limit
        self.stop = stop
        self.tally: Counter[str] = Counter()
        self.span: list[datetime | None] = [None, None]

    def lines(self) -> Iterator[dict[str, Any]]:
        remaining = self.limit
        while remaining > 0:
            if self.stop is not None and self.stop.is_set():  # a server shutting down: the .part file is dropped
                raise _Stopped
            want = min(PAGE, remaining)
            page = self.access.export_page(self.spec, self.kind, self.cursor, want)
            yield from page.resources
            self.tally.update(page.per_patient)
            _widen(self.span, page.first, page.last)
            self.cursor = page.cursor
            remaining -= len(page.resources)
            if len(page.resources) < want:
                return


def _widen(span: list[datetime | None], first: datetime | None, last: datetime | None) -> None:
    if first is not None:
        span[0] = first if span[0] is None else min(span[0], first)
    if last is not None:
        span[1] = last if span[1] is None else max(span[1], last)


def _widen_progress(progress: dict[str, Any], span: list[datetime | None]) -> None:
    known = [datetime.fromisoformat(v) if v else None for v in (progress.get("first"), progress.get("last"))]
    _widen(known, span[0], span[1])
    progress["first"], progress["last"] = (v.isoformat() if v else None for v in known)


def _release(rt: Runtime, job_id: str) -> str:
    """Let go of a job (stopped or cancelled): another start picks a running one up at once."""
    with rt.sessions.begin() as session:
        row = session.get(m.ExportJob, job_id)
        if row is None:
            return "unknown"
        row.lease_until = None
        status = row.status
    if status == "cancelled":
        jobs.remove_files(rt.settings, job_id)
    return status


def _finish(rt: Runtime, access: AccessService, spec: jobs.JobSpec, progress: dict[str, Any]) -> str:
    with rt.sessions.begin() as session:
        row = session.get(m.ExportJob, spec.id, with_for_update=True)
        if row is None or row.status != "running":
            return _release(rt, spec.id) if row is not None else "unknown"
        now = jobs.now_of(rt)
        row.status, row.finished_at, row.updated_at, row.lease_until = "completed", now, now, None
        row.expires_at = now + timedelta(minutes=rt.settings.export_expiry_minutes)
        counted = ", ".join(f"{t} {n}" for t, n in jobs.counts(row).items())
        first, last = (datetime.fromisoformat(v) if v else None for v in (progress.get("first"), progress.get("last")))
        patients = access.exported_patients(session, spec.id)
        access.audit_export_end(
            session, spec, "permit", f"completed: {counted}; {patients} patients; data {period_text(first, last)}"
        )
    return "completed"


def _fail(rt: Runtime, access: AccessService, spec: jobs.JobSpec, reason: str) -> str:
    with rt.sessions.begin() as session:
        row = session.get(m.ExportJob, spec.id)
        if row is None:
            return "unknown"
        now = jobs.now_of(rt)
        row.status, row.error, row.finished_at, row.updated_at, row.lease_until = "failed", reason, now, now, None
        row.expires_at = now + timedelta(minutes=rt.settings.export_expiry_minutes)
        access.audit_export_end(session, spec, "error", f"failed: {reason}"[:1000])
    jobs.remove_files(rt.settings, spec.id)
    return "failed"


class ExportWorker:
    """Runs export jobs in one daemon thread: on start it resumes unfinished ones, then waits for a kick-off
    (``wake``) or the poll interval, and sweeps expired jobs' files."""

    def __init__(self, rt: Runtime, poll_seconds: float = POLL_SECONDS) -> None:
        self.rt = rt
        self.poll_seconds = poll_seconds
        self.name = f"export-worker-{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                jobs.expire(self.rt)
                while not self._stop.is_set() and (job_id := jobs.claim(self.rt, self.name)) is not None:
                    run_job(self.rt, job_id, stop=self._stop)
            except Exception:  # noqa: BLE001 - the store may be away for a moment; try again on the next round
                log.exception("the export worker could not run its round")
            self._wake.wait(self.poll_seconds)
