"""Bulk Data export jobs as a server runs them: resumed by a new runtime and app after a restart, cancelled
while running, expired, and served by a real HTTP server."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta

import httpx
import pytest
from bulk_client import BulkClient
from bulk_support import consent_matrix, evaluator, make_evaluator, matrix, use_export_dir  # noqa: F401 - fixtures
from fastapi.testclient import TestClient
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from homediag.api.app import create_app
from homediag.bulk.worker import run_job
from homediag.runtime import Runtime
from homediag.store.database import make_engine, session_factory
from homediag.store.models import ExportJob

R4B = {"Patient": Patient, "Observation": Observation}


@pytest.fixture
def exports(runtime, tmp_path):  # type: ignore[no-untyped-def]
    return use_export_dir(runtime, tmp_path / "exports", export_worker=False)


def _job(runtime: Runtime, job_id: str) -> ExportJob:
    with runtime.sessions() as session:
        job = session.get(ExportJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_a_new_runtime_and_app_on_the_same_database_resume_a_job_where_it_stopped(  # type: ignore[no-untyped-def]
    client, runtime, exports, evaluator, matrix
):
    bulk = BulkClient(client, evaluator.token)
    status_url = bulk.kick_off("/fhir/$export")
    job_id = status_url.rsplit("/", 1)[1]
    # the first server writes two files (of three resources each), then stops, leaving a half-written file
    assert run_job(runtime, job_id, max_files=2) == "running"
    status, headers, _ = bulk.poll(status_url)
    assert status == 202 and "Patient 2, Observation 3" in headers["x-progress"]
    folder = exports / job_id
    first = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    assert set(first) == {"Patient-1.ndjson", "Observation-1.ndjson"}
    (folder / "Observation-2.ndjson.part").write_text('{"resourceType": "Observ')
    runtime.close()

    # a new process: its own engine, sessions and app over the same database; its worker resumes the job
    engine = make_engine(runtime.settings.database_url)
    settings = runtime.settings.model_copy(update={"export_worker": True})
    again = dataclasses.replace(runtime, settings=settings, engine=engine, sessions=session_factory(engine))
    try:
        with TestClient(create_app(again)) as restarted:
            bulk = BulkClient(restarted, evaluator.token)
            manifest = bulk.wait(status_url)
            found = bulk.download(manifest)
    finally:
        again.close()
    # the files written before the stop were kept as they were, not written again
    for name, (mtime, data) in first.items():
        assert (folder / name).stat().st_mtime_ns == mtime and (folder / name).read_bytes() == data
    assert not list(folder.glob("*.part"))
    ids = [r["id"] for r in found["Observation"]]
    assert len(ids) == len(set(ids)) == 12 and len(found["Patient"]) == 2
    assert [e["url"].rsplit("/", 1)[1] for e in manifest["output"]] == [
        "Patient-1.ndjson", "Observation-1.ndjson", "Observation-2.ndjson", "Observation-3.ndjson",
        "Observation-4.ndjson",
    ]  # fmt: skip


def test_a_stopped_worker_leaves_no_half_written_file_under_a_file_s_name(  # type: ignore[no-untyped-def]
    client, runtime, exports, evaluator, matrix
):
    """A file is written to NAME.part and renamed when whole: every file a job lists is complete."""
    from homediag.bulk import ndjson

    def failing():  # type: ignore[no-untyped-def]
        yield {"resourceType": "Patient", "id": "a"}
        raise OSError("disk full")

    target = exports / "probe" / "Patient-1.ndjson"
    target.parent.mkdir(parents=True)
    with pytest.raises(OSError, match="disk full"):
        ndjson.write_atomically(target, failing())
    assert list(target.parent.iterdir()) == []


def test_delete_cancels_a_running_job_and_removes_its_files(client, runtime, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    bulk = BulkClient(client, evaluator.token)
    status_url = bulk.kick_off("/fhir/$export")
    job_id = status_url.rsplit("/", 1)[1]
    assert run_job(runtime, job_id, max_files=1) == "running"
    assert list((exports / job_id).iterdir())
    assert bulk.delete(status_url) == 202
    assert not (exports / job_id).exists()
    assert bulk.poll(status_url)[0] == 404
    assert bulk.delete(status_url) == 404
    # the worker does not take the job up again, nor bring its folder back
    assert run_job(runtime, job_id) == "cancelled"
    assert not (exports / job_id).exists()
    assert _job(runtime, job_id).status == "cancelled"


def test_a_finished_job_expires_and_its_files_are_removed(client, runtime, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    from homediag.bulk import jobs

    use_export_dir(runtime, exports, export_worker=False, export_expiry_minutes=30)
    bulk = BulkClient(client, evaluator.token)
    status_url = bulk.kick_off("/fhir/$export")
    job_id = status_url.rsplit("/", 1)[1]
    assert run_job(runtime, job_id) == "completed"
    manifest = bulk.wait(status_url)
    assert bulk.download(manifest)
    finished = _job(runtime, job_id)
    assert finished.expires_at is not None and finished.finished_at is not None
    assert finished.expires_at - finished.finished_at == timedelta(minutes=30)

    real_clock = runtime.clock
    runtime.clock = lambda: real_clock() + timedelta(minutes=29)
    assert bulk.poll(status_url)[0] == 200
    runtime.clock = lambda: real_clock() + timedelta(minutes=31)
    assert jobs.expire(runtime) == [job_id]
    assert not (exports / job_id).exists()
    assert bulk.poll(status_url)[0] == 404
    assert (
        client.get(manifest["output"][0]["url"], headers={"Authorization": f"Bearer {evaluator.token}"}).status_code
        == 404
    )


def test_the_app_s_worker_runs_a_job_on_its_own(client, runtime, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    use_export_dir(runtime, exports, export_worker=True)
    _, manifest, found = BulkClient(client, evaluator.token).export("/fhir/Patient/$export")
    assert len(found["Observation"]) == 12


def test_a_revoked_owner_s_running_job_fails_and_keeps_no_file(client, runtime, tokens, exports, evaluator, matrix):  # type: ignore[no-untyped-def]
    from homediag.users import revoke_user

    bulk = BulkClient(client, evaluator.token)
    job_id = bulk.kick_off("/fhir/$export").rsplit("/", 1)[1]
    assert run_job(runtime, job_id, max_files=1) == "running"
    with runtime.sessions.begin() as session:
        revoke_user(session, evaluator.principal.id)
    assert run_job(runtime, job_id) == "failed"
    assert "revoked" in (_job(runtime, job_id).error or "")
    assert not (exports / job_id).exists()
    # the admin's AuditEvent view shows the job's end as a serious failure, with the reason
    events = client.get("/fhir/AuditEvent?type=export-end", headers=tokens.auth("admin")).json()
    (event,) = [e["resource"] for e in events["entry"]]
    assert event["outcome"] == "8" and "revoked" in event["outcomeDesc"]


def test_export_over_a_real_http_server(runtime, live_server, tmp_path, tokens):  # type: ignore[no-untyped-def]
    """The IG's flow over TCP with httpx, the app's own worker running the job."""
    use_export_dir(runtime, tmp_path / "exports", export_worker=True)
    evaluator = make_evaluator(runtime)
    with httpx.Client(base_url=live_server, timeout=30) as http:
        from conftest import Pilot

        pilot = Pilot(http, tokens, runtime)  # type: ignore[arg-type]  # httpx.Client has TestClient's interface
        consent_matrix(http, tokens, pilot)
        bulk = BulkClient(http, evaluator.token)
        status_url, manifest, found = bulk.export("/fhir/$export", {"_outputFormat": "ndjson"})
        assert status_url.startswith(f"{live_server}/fhir/bulk-status/")
        for kind, resources in found.items():
            for resource in resources:
                R4B[kind].model_validate(resource)
        assert len(found["Observation"]) == 12
        assert bulk.delete(status_url) == 202
    assert not os.listdir(tmp_path / "exports")


def test_a_shutdown_in_the_middle_of_a_file_drops_that_file_and_the_job_resumes(  # type: ignore[no-untyped-def]
    client, runtime, exports, evaluator, matrix, monkeypatch
):
    import threading

    from homediag.access import AccessService
    from homediag.bulk import worker

    bulk = BulkClient(client, evaluator.token)
    status_url = bulk.kick_off("/fhir/$export", {"_type": "Observation"})
    job_id = status_url.rsplit("/", 1)[1]
    stop = threading.Event()
    read_page = AccessService.export_page

    def page_then_shut_down(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        page = read_page(self, *args, **kwargs)
        stop.set()  # the server is told to stop while the first file is being written
        return page

    monkeypatch.setattr(worker, "PAGE", 1)  # a page per resource: the stop falls inside the file
    monkeypatch.setattr(AccessService, "export_page", page_then_shut_down)
    assert run_job(runtime, job_id, stop=stop) == "running"
    assert list((exports / job_id).iterdir()) == []  # neither a file nor a .part left
    assert _job(runtime, job_id).lease_until is None  # let go: the next start takes it up at once

    monkeypatch.undo()
    assert run_job(runtime, job_id) == "completed"
    found = bulk.download(bulk.wait(status_url))
    assert len({o["id"] for o in found["Observation"]}) == 12
