"""Reads on threads of lower CPU priority (``homediag.api.priority``): a clinician's search and page are served by the
read pool's threads, whose nice value is raised by ``read_nice``, and still answer; a gateway's upload and the
liveness check are not queued behind reads that hold every read thread."""

from __future__ import annotations

import os
import random
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from homediag.access import AccessService
from homediag.api.app import create_app
from homediag.ingest import IngestService
from homediag.synthetic import cuff_payload, envelope, synthetic_patients

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's")


def _nice() -> int:
    """The calling thread's nice value (Linux keeps one per thread)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _reading(patient: Any, rng: random.Random) -> dict[str, Any]:
    return envelope(patient, cuff_payload(rng, datetime(2026, 3, 10, 8, 0)), datetime.now(UTC))


@pytest.fixture
def patient(pilot, client, tokens):
    person = synthetic_patients(1, seed=41)[0]
    pid = pilot.enrol(person.cpr)
    pilot.consent(pid)
    response = client.post("/ingest", json=_reading(person, random.Random(1)), headers=tokens.auth("gateway"))
    assert response.status_code == 201, response.text
    return pid, person


def _recording(monkeypatch, cls: type, name: str, seen: list[tuple[str, int]], gate: Any = None) -> None:
    """``cls.name`` made to note the thread and its nice value it runs on (and to wait on ``gate`` first)."""
    original = getattr(cls, name)

    def noted(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, _nice()))
        if gate is not None:
            gate()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, noted)


def test_a_search_runs_on_a_read_thread_at_lower_priority_and_answers(runtime, tokens, patient, monkeypatch):
    runtime.settings.read_nice, runtime.settings.read_threads = 3, 2
    searches: list[tuple[str, int]] = []
    uploads: list[tuple[str, int]] = []
    _recording(monkeypatch, AccessService, "search_observations", searches)
    _recording(monkeypatch, IngestService, "post", uploads)
    own = _nice()
    with TestClient(create_app(runtime)) as client:
        found = client.get("/fhir/Observation", params={"patient": patient[0]}, headers=tokens.auth("clinician"))
        form = client.post("/fhir/Observation/_search", data={"patient": patient[0]}, headers=tokens.auth("clinician"))
        sent = client.post("/ingest", json=_reading(patient[1], random.Random(2)), headers=tokens.auth("gateway"))
    assert found.status_code == 200 and found.json()["total"] == 2, found.text  # the panel and the pulse
    assert form.status_code == 200 and form.json()["total"] == 2, form.text
    assert sent.status_code == 201, sent.text
    assert [(name.startswith("homediag-read"), nice) for name, nice in searches] == [(True, min(19, own + 3))] * 2
    assert [(name.startswith("homediag-read"), nice) for name, nice in uploads] == [(False, own)]


def test_no_read_pool_runs_reads_as_every_other_route(runtime, tokens, patient, monkeypatch):
    runtime.settings.read_nice, runtime.settings.read_threads = 5, 0
    searches: list[tuple[str, int]] = []
    _recording(monkeypatch, AccessService, "search_observations", searches)
    own = _nice()
    with TestClient(create_app(runtime)) as client:
        found = client.get("/fhir/Observation", params={"patient": patient[0]}, headers=tokens.auth("clinician"))
    assert found.status_code == 200 and found.json()["total"] == 2, found.text
    assert [(name.startswith("homediag-read"), nice) for name, nice in searches] == [(False, own)]


def test_an_upload_and_the_liveness_check_do_not_wait_for_busy_read_threads(runtime, tokens, patient, monkeypatch):
    runtime.settings.read_nice, runtime.settings.read_threads = 1, 1
    started, release = threading.Event(), threading.Event()
    searches: list[tuple[str, int]] = []

    def hold() -> None:
        started.set()
        assert release.wait(30), "the test never let the search go on"

    _recording(monkeypatch, AccessService, "search_observations", searches, gate=hold)
    answers: list[int] = []
    with TestClient(create_app(runtime)) as client:

        def search() -> None:
            response = client.get("/fhir/Observation", params={"patient": patient[0]}, headers=tokens.auth("clinician"))
            answers.append(response.status_code)

        held = threading.Thread(target=search)
        held.start()
        try:
            assert started.wait(30), "the search never reached the access layer"
            sent = client.post("/ingest", json=_reading(patient[1], random.Random(3)), headers=tokens.auth("gateway"))
            live = client.get("/health/live")
            assert not answers  # the search still holds the one read thread
        finally:
            release.set()
            held.join(30)
    assert sent.status_code == 201, sent.text
    assert live.status_code == 200
    assert answers == [200]


def test_while_an_upload_runs_reads_take_turns_and_all_answer(runtime, tokens, patient, monkeypatch):
    from homediag.api import priority

    runtime.settings.read_nice, runtime.settings.read_threads, runtime.settings.reads_beside_ingest = 1, 2, 1
    uploading, upload_done = threading.Event(), threading.Event()
    first_in, first_done = threading.Event(), threading.Event()
    searches: list[tuple[str, int]] = []

    def hold_upload() -> None:
        uploading.set()
        assert upload_done.wait(30), "the test never let the upload go on"

    def hold_first() -> None:
        if not first_in.is_set():
            first_in.set()
            assert first_done.wait(30), "the test never let the first search go on"

    _recording(monkeypatch, IngestService, "post", [], gate=hold_upload)
    _recording(monkeypatch, AccessService, "search_observations", searches, gate=hold_first)
    answers: list[int] = []
    with TestClient(create_app(runtime)) as client:
        turns = priority.pool().turns  # type: ignore[union-attr]

        def upload() -> None:
            body = _reading(patient[1], random.Random(4))
            answers.append(client.post("/ingest", json=body, headers=tokens.auth("gateway")).status_code)

        def search() -> None:
            params = {"patient": patient[0]}
            answers.append(client.get("/fhir/Observation", params=params, headers=tokens.auth("clinician")).status_code)

        threads = [threading.Thread(target=upload)]
        threads[0].start()
        try:
            assert uploading.wait(30)
            threads.append(threading.Thread(target=search))
            threads[-1].start()
            assert first_in.wait(30)
            threads.append(threading.Thread(target=search))
            threads[-1].start()
            for _ in range(3000):  # the second search waits for its turn, not for a thread (there are two)
                if turns.waiting:
                    break
                threading.Event().wait(0.01)
            assert turns.waiting == 1 and len(searches) == 1
            first_done.set()  # the first search ends: the second takes its turn, the upload still running
            threads[1].join(30)
            threads[2].join(30)
            assert answers == [200, 200] and not upload_done.is_set()  # both answered, the upload still running
        finally:
            first_done.set()
            upload_done.set()
            for t in threads:
                t.join(30)
    assert sorted(answers) == [200, 200, 201]


def test_with_no_read_beside_an_upload_a_search_waits_for_it_at_most_read_wait_max(
    runtime, tokens, patient, monkeypatch
):
    """``reads_beside_ingest = 0``: a search waits while an upload runs in the process, but a back-fill of list after
    list never holds it back longer than ``read_wait_max_ms``."""
    runtime.settings.read_nice, runtime.settings.read_threads = 1, 2
    runtime.settings.reads_beside_ingest, runtime.settings.read_wait_max_ms = 0, 300
    uploading, upload_done = threading.Event(), threading.Event()

    def hold_upload() -> None:
        uploading.set()
        assert upload_done.wait(30), "the test never let the upload go on"

    _recording(monkeypatch, IngestService, "post", [], gate=hold_upload)
    answers: list[int] = []
    with TestClient(create_app(runtime)) as client:

        def upload() -> None:
            body = _reading(patient[1], random.Random(5))
            answers.append(client.post("/ingest", json=body, headers=tokens.auth("gateway")).status_code)

        sending = threading.Thread(target=upload)
        sending.start()
        try:
            assert uploading.wait(30)
            found = client.get("/fhir/Observation", params={"patient": patient[0]}, headers=tokens.auth("clinician"))
            assert found.status_code == 200 and not upload_done.is_set()  # answered with the upload still running
        finally:
            upload_done.set()
            sending.join(30)
    assert answers == [201]
