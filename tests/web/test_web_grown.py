"""A patient's kept worklist part grown by new readings (at ingest, in its transaction, or by the view of a freshly
started process from the kept running parts) is the part the worklist computes whole from all the readings; what
ingest may not grow (a back-filled reading) is computed by the next view. Over HTTP, the real ASGI app, SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_web_remembered import _restart, _row, _send, _stamp, shown  # noqa: F401 - a fixture
from web_support import COPENHAGEN, WebPilot, web, web_pilot  # noqa: F401 - fixtures

from homediag.access import triage, worklist_grown, worklist_kept
from homediag.adapters.devices import blood_pressure
from homediag.runtime import Runtime
from homediag.store import models as m


def _counts(runtime: Runtime, patient_id: str) -> tuple[int, int | None]:
    """(the patient's Observations, the Observation count its kept worklist part was computed from)."""
    with runtime.sessions() as session:
        key = session.execute(select(m.Patient.patient_key).where(m.Patient.id == patient_id)).scalar_one()
        count = session.execute(select(func.count()).where(m.Observation.patient_key == key)).scalar_one()
        kept = session.execute(
            select(m.WorklistSummary.observations).where(m.WorklistSummary.patient_key == key)
        ).scalar_one_or_none()
    return count, kept


def _whole(web: TestClient, runtime: Runtime, patient_id: str) -> str | None:
    """The patient's worklist row computed whole, from all its readings: no kept part, no memory."""
    with runtime.sessions.begin() as session:
        session.execute(m.WorklistSummary.__table__.delete())
    _restart(runtime)
    return _row(web.get("/app/worklist").text, patient_id)


def _pressure(values: tuple[int, int, int], taken: datetime) -> bytes:
    return blood_pressure.encode(tuple(Decimal(v) for v in values), timestamp=_stamp(taken), pulse_rate=71)  # type: ignore[arg-type]


def test_ingest_grows_the_kept_part_into_the_one_computed_whole(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    assert _row(web.get("/app/worklist").text, pid) is not None  # computed and kept
    now = datetime.now(COPENHAGEN).replace(second=0, microsecond=0)
    for minutes, values in ((50, (196, 112, 140)), (30, (128, 79, 95))):  # a red one, then a green one
        _send(pilot, person, _pressure(values, now - timedelta(minutes=minutes)), now - timedelta(minutes=minutes))
        count, kept = _counts(runtime, pid)
        assert kept == count  # grown by ingest, before any view
        _restart(runtime)
        grown = _row(web.get("/app/worklist").text, pid)  # the kept part as ingest grew it
        assert grown is not None and grown == _whole(web, runtime, pid)
    assert "triage-red" in (grown or "") and "128/79" in (grown or "")


def test_ingest_leaves_a_back_filled_reading_to_the_next_view(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    before = _row(web.get("/app/worklist").text, pid)
    assert before is not None and "triage-red" not in before
    older = datetime.now(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(days=2, hours=3)
    _send(pilot, person, _pressure((199, 118, 145), older), older)  # dated before the readings kept
    count, kept = _counts(runtime, pid)
    assert kept is not None and kept < count  # not grown: the part is behind
    _restart(runtime)
    row = _row(web.get("/app/worklist").text, pid)
    assert row is not None and "triage-red" in row and "199/118" not in row  # the latest value stays the newest
    assert row == _whole(web, runtime, pid)


def test_a_restarted_view_grows_a_kept_part_ingest_did_not_grow(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    assert _row(web.get("/app/worklist").text, pid) is not None  # computed and kept
    monkeypatch.setattr(worklist_grown, "grow", lambda *args: None)  # as an ingest that did not grow it
    taken = datetime.now(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(minutes=20)
    _send(pilot, person, _pressure((201, 119, 130), taken), taken)
    count, kept = _counts(runtime, pid)
    assert kept is not None and kept < count
    decoded: list[str] = []
    decode = worklist_kept.decode_parts
    monkeypatch.setattr(worklist_kept, "decode_parts", lambda text, *a: decoded.append(text) or decode(text, *a))
    _restart(runtime)
    grown = _row(web.get("/app/worklist").text, pid)
    assert decoded  # grown from the kept running parts, not computed whole
    assert _counts(runtime, pid) == (count, count)  # and kept again
    assert grown is not None and "201/119" in grown and "triage-red" in grown
    assert grown == _whole(web, runtime, pid)


def test_a_failure_to_grow_the_kept_parts_never_refuses_a_reading(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    assert _row(web.get("/app/worklist").text, pid) is not None  # computed and kept

    def failing(*args: object) -> None:
        raise RuntimeError("no growing today")

    monkeypatch.setattr(worklist_grown, "grow", failing)
    taken = datetime.now(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(minutes=15)
    _send(pilot, person, _pressure((203, 120, 131), taken), taken)  # stored: answered 200, created
    count, kept = _counts(runtime, pid)
    assert kept is not None and kept < count  # the part stays behind
    row = _row(web.get("/app/worklist").text, pid)
    assert row is not None and "203/120" in row and "triage-red" in row


def test_the_next_mornings_view_and_ingest_finish_the_kept_parts_again_without_reading_the_history(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    assert _row(web.get("/app/worklist").text, pid) is not None  # computed and kept as of now
    computed: list[str] = []  # the patients computed whole from their history
    load = triage.load
    monkeypatch.setattr(triage, "load", lambda session, keys, *a: computed.extend(keys) or load(session, keys, *a))
    real = runtime.clock
    # six days on, at noon: midnights passed, and readings left the 14 days (10 days measured then 8)
    noon = datetime.combine(real().astimezone(COPENHAGEN).date() + timedelta(days=6), time(12, 0), COPENHAGEN)
    next_day = noon + timedelta(days=1, hours=1)
    try:
        runtime.clock = lambda: noon.astimezone(UTC)
        _restart(runtime)
        finished = _row(web.get("/app/worklist").text, pid)  # from the kept part, finished again at noon
        assert not computed
        assert finished is not None and "8 af 14 dage" in finished
        assert finished == _whole(web, runtime, pid)
        computed.clear()

        grow = worklist_grown.grow  # ingest the next day, after the part kept at noon expired (midnight)
        monkeypatch.setattr(worklist_grown, "grow", lambda session, pending, now: grow(session, pending, next_day))
        taken = real().astimezone(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(minutes=20)
        _send(pilot, person, _pressure((205, 122, 133), taken), taken)
        count, kept = _counts(runtime, pid)
        assert kept == count  # grown by ingest, before any view
        runtime.clock = lambda: next_day.astimezone(UTC)
        _restart(runtime)
        grown = _row(web.get("/app/worklist").text, pid)
        assert not computed
        assert grown is not None and "205/122" in grown and "triage-red" in grown
        assert grown == _whole(web, runtime, pid)
    finally:
        runtime.clock = real
