"""Admission remembered per process (``homediag.ingest.admission``), on SQLite and PostgreSQL: a change to a
patient's enrolment on a gateway or to the gateway's devices, made anywhere (another worker, the CLI, SQL),
refuses or admits the next upload in every process, and one that lands while a request is in flight is seen
before that request is written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from test_ingest import PATIENTS, cuff_envelope

from homediag import care
from homediag.ingest import IngestService
from homediag.monitoring import store as monitoring_store
from homediag.monitoring.settings import parse_settings
from homediag.monitoring.store import EPOCH
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.store.database import make_engine, session_factory
from homediag.users import Principal

ADMIN = Principal("test-admin", "test admin", "admin", None)


@pytest.fixture
def other_worker(runtime: Runtime) -> Iterator[Runtime]:
    """A second runtime on the same database, with its own engine: what another server worker holds."""
    engine = make_engine(str(runtime.settings.database_url))
    other = Runtime(runtime.settings, runtime.keys, engine, session_factory(engine))
    yield other
    other.close()


def _gateway(tokens) -> Principal:  # type: ignore[no-untyped-def]
    return Principal(tokens.ids["gateway"], "test gateway", "gateway", None)


def test_an_enrolment_withdrawn_in_one_worker_refuses_the_next_upload_in_another(
    runtime, other_worker, tokens, pilot
) -> None:  # type: ignore[no-untyped-def]
    patient_id = pilot.enrol(PATIENTS[0].cpr)
    gateway, here, there = _gateway(tokens), IngestService(runtime), IngestService(other_worker)
    assert there.ingest_one(gateway, cuff_envelope(seed=1)).outcome == "created"  # its admission now remembered
    assert there.ingest_one(gateway, cuff_envelope(seed=2, taken_minutes_ago=40)).outcome == "created"
    with runtime.sessions.begin() as session:  # withdrawn through the first worker's runtime
        care.unassign_gateway(session, runtime.keys, ADMIN, tokens.ids["gateway"], patient_id)
    refused = there.ingest_one(gateway, cuff_envelope(seed=3, taken_minutes_ago=50))
    assert refused.outcome == "rejected"
    assert "not enrolled on this gateway" in refused.issues[0].diagnostics
    assert here.ingest_one(gateway, cuff_envelope(seed=4, taken_minutes_ago=60)).outcome == "rejected"
    with runtime.sessions.begin() as session:  # enrolled again: the refusal is not remembered either
        care.assign_gateway(session, runtime.keys, ADMIN, tokens.ids["gateway"], patient_id)
    assert there.ingest_one(gateway, cuff_envelope(seed=5, taken_minutes_ago=70)).outcome == "created"


def test_a_device_disallowed_by_sql_typed_by_hand_refuses_the_next_upload(runtime, tokens, pilot) -> None:  # type: ignore[no-untyped-def]
    pilot.enrol(PATIENTS[0].cpr)
    gateway, service = _gateway(tokens), IngestService(runtime)
    assert service.ingest_one(gateway, cuff_envelope(seed=1)).outcome == "created"
    with runtime.engine.begin() as conn:  # not through homediag: the database's triggers still move the counter
        conn.execute(text("delete from gateway_device where gateway_id = :g"), {"g": tokens.ids["gateway"]})
    refused = service.ingest_one(gateway, cuff_envelope(seed=2, taken_minutes_ago=40))
    assert refused.outcome == "rejected"
    assert "not allowed on this gateway" in refused.issues[0].diagnostics


def test_a_withdrawal_that_lands_while_an_upload_is_in_flight_refuses_it(runtime, other_worker, tokens, pilot) -> None:  # type: ignore[no-untyped-def]
    """The upload was admitted from memory; the withdrawal commits before it is written: it is run again, refused,
    and nothing of the first run is stored."""
    patient_id = pilot.enrol(PATIENTS[0].cpr)
    gateway, service = _gateway(tokens), IngestService(runtime)
    assert service.ingest_one(gateway, cuff_envelope(seed=1)).outcome == "created"  # remembered
    late = cuff_envelope(seed=2, taken_minutes_ago=40)
    withdrawn: list[bool] = []

    def add_then_withdraw(batch) -> None:  # type: ignore[no-untyped-def]
        service._add(batch, late, 0)
        if not withdrawn:  # once, between the envelope's admission and its write (another worker's transaction)
            with other_worker.sessions.begin() as session:
                care.unassign_gateway(session, other_worker.keys, ADMIN, tokens.ids["gateway"], patient_id)
            withdrawn.append(True)

    (result,) = service.pipeline.batch(gateway, add_then_withdraw)
    assert result.outcome == "rejected"
    assert "not enrolled on this gateway" in result.issues[0].diagnostics
    with runtime.sessions() as session:
        outcomes = session.execute(select(m.Upload.outcome).order_by(m.Upload.received_at)).scalars().all()
        assert outcomes == ["created", "rejected"]  # the first run left no upload behind
        assert session.execute(select(m.Observation.upload_id).distinct()).scalars().all() != []
        assert len(session.execute(select(m.Observation.id)).all()) == 2  # only the first envelope's readings


def test_a_settings_change_in_one_worker_triages_the_next_upload_in_another_under_it(
    runtime, other_worker, tokens, pilot
) -> None:  # type: ignore[no-untyped-def]
    """The settings histories ingest triages the readings it keeps under are remembered with the admission answers:
    a settings version recorded elsewhere moves the counter, and the next upload is kept under the new content."""
    pilot.enrol(PATIENTS[0].cpr)
    gateway, there = _gateway(tokens), IngestService(other_worker)
    assert there.ingest_one(gateway, cuff_envelope(seed=1)).outcome == "created"  # the history now remembered
    with runtime.sessions.begin() as session:  # a new settings version, through the first worker's runtime
        (pkey,) = session.execute(select(m.Patient.patient_key)).scalars().all()
        before = monitoring_store.versions(session, pkey)[-1]
        stricter = parse_settings({"thresholds": {"systolic": {"yellow_high": 110}}}, before.settings)
        monitoring_store.record_version(
            session, pkey, stricter, valid_from=EPOCH, recorded_at=EPOCH, recorded_by="test", note=None
        )
    with runtime.sessions() as session:
        after = monitoring_store.versions(session, pkey)[-1]
    assert after.settings_key != before.settings_key
    second = there.ingest_one(gateway, cuff_envelope(seed=2, taken_minutes_ago=40))
    assert second.outcome == "created"
    with runtime.sessions() as session:
        kept = session.execute(
            select(m.ReadingTriage.settings)
            .join(m.Observation, m.Observation.id == m.ReadingTriage.observation_id)
            .join(m.Upload, m.Upload.id == m.Observation.upload_id)
            .order_by(m.Upload.received_at)
        ).scalars()
        assert set(kept) == {before.settings_key, after.settings_key}
        latest = session.execute(
            select(m.ReadingTriage.settings)
            .join(m.Observation, m.Observation.id == m.ReadingTriage.observation_id)
            .where(m.Observation.upload_id == second.upload)
        ).scalars()
        assert set(latest) == {after.settings_key}
