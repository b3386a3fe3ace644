"""Single envelopes sent at the same time are written in one transaction (``homediag.ingest.grouped``), on SQLite
and PostgreSQL: each still gets its own outcome, the one the database refuses or the platform refuses costs no
other, two sends of one reading store it once, and a request that fails outside its envelope fails alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from test_ingest import PATIENTS, cuff_envelope, refused_device_model

from homediag import audit
from homediag.ingest import IngestService, grouped
from homediag.store import models as m
from homediag.users import Principal, create_user


@pytest.fixture
def refused_model(runtime) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A device model the database refuses to store (a trigger, dropped after the test)."""
    with refused_device_model(runtime, "refused-cuff", trigger="refuse_grouped_model") as model:
        yield model


def _until_waiting(group: grouped._Group, n: int) -> None:
    """Back once ``n`` requests wait behind the group being written (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with group.lock:
            if len(group.waiting) == n:
                return
        time.sleep(0.01)


def _behind_a_leader(service, gateway, leads, send, n: int, answers: dict[int, Any]) -> None:  # type: ignore[no-untyped-def]
    """A group led by ``leads`` (its answer at ``answers[-1]``), and once it leads, ``send(i)`` for each of ``n`` in
    threads of their own; back when all are done."""
    group = grouped._GROUPS.of(service.pipeline.rt.engine)
    leader = threading.Thread(target=lambda: answers.__setitem__(-1, grouped.grouped(service.pipeline, gateway, leads)))
    leader.start()
    while not group.leading:
        time.sleep(0.01)
    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in [leader, *threads]:
        t.join(timeout=60)


def test_single_envelopes_sent_together_are_written_together_each_with_its_own_outcome(
    runtime, tokens, pilot, refused_model
):  # type: ignore[no-untyped-def]
    pilot.enrol(PATIENTS[0].cpr)
    with runtime.sessions.begin() as session:  # a second gateway the patient is not enrolled on
        other, _ = create_user(session, name="other gateway", role="gateway", organisation=None)
        other_gateway = Principal(other.id, other.name, "gateway", None)
    gateway = Principal(tokens.ids["gateway"], "test gateway", "gateway", None)
    service, group = IngestService(runtime), grouped._GROUPS.of(runtime.engine)
    first, a, b, refused = (cuff_envelope(seed=s, taken_minutes_ago=30 + s) for s in (1, 2, 3, 4))
    refused["device"] = {**refused["device"], "model": refused_model, "serial": "SN-REFUSED-1"}
    sends: list[tuple[Principal, Any]] = [
        (gateway, a),
        (gateway, b),
        (gateway, a),  # the same reading again
        (gateway, refused),
        (other_gateway, cuff_envelope(seed=5, taken_minutes_ago=35)),
        (gateway, "fails outside its envelope"),
    ]
    answers: dict[int, Any] = {}

    def leads(batch) -> None:  # type: ignore[no-untyped-def]
        _until_waiting(group, len(sends))  # holds the first group open until every other send waits behind it
        service._add(batch, first, 0)

    def send(i: int) -> None:
        sender, envelope = sends[i]
        try:
            if isinstance(envelope, str):
                grouped.grouped(service.pipeline, sender, lambda batch: (_ for _ in ()).throw(RuntimeError(envelope)))
            else:
                answers[i] = service.ingest_one(sender, envelope)
        except RuntimeError as exc:
            answers[i] = exc

    _behind_a_leader(service, gateway, leads, send, len(sends), answers)

    assert answers[-1][0].outcome == "created"
    outcomes = [answers[i].outcome for i in range(5)]
    assert sorted(outcomes[:3]) == ["created", "created", "duplicate"]  # a, b, and a again: stored once
    assert outcomes[3:] == ["rejected", "rejected"]
    assert "could not store" in answers[3].issues[0].diagnostics
    assert "not enrolled on this gateway" in answers[4].issues[0].diagnostics
    assert isinstance(answers[5], RuntimeError)
    with runtime.sessions() as session:
        kept = {u.id: u.outcome for u in session.scalars(select(m.Upload))}
        stored = session.execute(select(m.Observation.upload_id, m.Observation.received_at)).all()
        assert audit.verify(session, runtime.keys).ok
    assert kept == {r.upload: r.outcome for r in [answers[-1][0], *(answers[i] for i in range(5))]}
    assert {upload for upload, _ in stored} == {
        r.upload for r in [answers[-1][0], *answers.values()] if getattr(r, "outcome", "") == "created"
    }
    waited = {f"upload/{answers[i].upload}" for i in range(5)}
    with runtime.sessions() as session:
        audited_at = session.execute(select(m.AuditEvent.at).where(m.AuditEvent.entity.in_(waited))).scalars().all()
    assert len(audited_at) == 5 and len(set(audited_at)) == 1  # the requests that waited: one transaction's audit


@pytest.mark.parametrize("threads_n", [8])
def test_concurrent_single_envelopes_of_different_readings_are_all_stored(runtime, tokens, pilot, threads_n):  # type: ignore[no-untyped-def]
    pilot.enrol(PATIENTS[0].cpr)
    gateway = Principal(tokens.ids["gateway"], "test gateway", "gateway", None)
    service = IngestService(runtime)
    barrier = threading.Barrier(threads_n)
    results: list[Any] = [None] * threads_n

    def send(i: int) -> None:
        barrier.wait()
        results[i] = service.ingest_one(gateway, cuff_envelope(seed=100 + i, taken_minutes_ago=30 + i))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [r.outcome for r in results] == ["created"] * threads_n
    with runtime.sessions() as session:
        assert len(session.execute(select(m.Observation.id)).all()) == 2 * threads_n
        assert audit.verify(session, runtime.keys).ok


def test_lists_sent_while_one_is_written_are_written_after_it_together_up_to_the_envelope_limit(
    runtime, tokens, pilot, monkeypatch
):  # type: ignore[no-untyped-def]
    """A list that arrives while a list of the same process is being written waits for its commit (two lists at once
    in one process would share its interpreter, and on SQLite hold the write lock twice as long); the lists waiting
    then are written in one transaction, as many as ``GROUP_ENVELOPES`` allows, each answered with its own results."""
    monkeypatch.setattr(grouped, "GROUP_ENVELOPES", 5)
    pilot.enrol(PATIENTS[0].cpr)
    gateway = Principal(tokens.ids["gateway"], "test gateway", "gateway", None)
    service, group = IngestService(runtime), grouped._GROUPS.of(runtime.engine)
    lists = [[cuff_envelope(seed=s, taken_minutes_ago=s - 160) for s in (200 + 10 * i, 201 + 10 * i)] for i in range(3)]
    answers: dict[int, Any] = {}
    written_before_release: list[int] = []

    def leads(batch) -> None:  # type: ignore[no-untyped-def]
        _until_waiting(group, len(lists))  # holds the first group open until the three lists wait behind it
        with runtime.sessions() as session:  # nothing of the waiting lists is written while this one is
            written_before_release.append(len(session.execute(select(m.Upload.id)).all()))
        service._add(batch, cuff_envelope(seed=199, taken_minutes_ago=39), 0)

    def send(i: int) -> None:
        while len(group.waiting) < i:  # in order: the first two fill the next group, the third is one too many
            time.sleep(0.005)
        answers[i] = service.ingest(gateway, lists[i])

    _behind_a_leader(service, gateway, leads, send, len(lists), answers)

    assert written_before_release == [0]
    assert [[r.outcome for r in answers[i]] for i in range(3)] == [["created", "created"]] * 3
    with runtime.sessions() as session:
        assert audit.verify(session, runtime.keys).ok
        by_upload = {
            upload_id: received
            for upload_id, received in session.execute(select(m.Observation.upload_id, m.Observation.received_at))
        }
        at = {
            entity: when
            for entity, when in session.execute(
                select(m.AuditEvent.entity, m.AuditEvent.at).where(m.AuditEvent.entity.like("upload/%"))
            )
        }
    for i in range(3):  # each list's answer names its own readings, stored
        assert {r.upload for r in answers[i]} <= set(by_upload)
    first, second, third = ({at[f"upload/{r.upload}"] for r in answers[i]} for i in range(3))
    assert len(first) == 1 and first == second  # the two lists that fit: one transaction
    assert third != first  # the one that did not: the next
