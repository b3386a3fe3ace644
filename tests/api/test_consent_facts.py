"""A consent's decision-relevant facts kept with it (``consent.facts``), on both engines: written when a consent is
recorded (each version), back-filled by migration 0009 for consents recorded before it, and read by a process that
has not seen the consent (a restart) instead of parsing the resource; a consent without them is still decided."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta

from alembic import command
from sqlalchemy import create_engine, inspect, select, text, update

from homediag.access import AccessService
from homediag.consent import parse_consent, record_of, treatment_consent
from homediag.store import models as m
from homediag.store.database import alembic_config, upgrade
from homediag.store.scratch import scratch_postgres_database
from homediag.users import Principal


def _clinician(tokens) -> Principal:  # type: ignore[no-untyped-def]
    return Principal(tokens.ids["clinician"], "test clinician", "clinician", None)


def _listed(runtime, tokens) -> set[str]:  # type: ignore[no-untyped-def]
    """The patient ids on the clinician's worklist, decided by a process that has seen no consent yet."""
    runtime.consent_cache.clear()
    return {row.patient_id for row in AccessService(runtime).worklist_page(_clinician(tokens)).rows}


def test_each_recorded_version_keeps_its_facts_and_a_restart_decides_from_them(pilot, runtime, tokens) -> None:
    kept, withdrawn = pilot.enrol("0101901234"), pilot.enrol("0202902345")
    pilot.consent(kept, start=date.today() - timedelta(days=30))
    pilot.withdraw(pilot.consent(withdrawn))
    with runtime.sessions() as session:
        rows = session.execute(select(m.Consent.resource, m.Consent.facts, m.Consent.version)).all()
    assert sorted(r.version for r in rows) == [1, 2]
    for resource, facts, _ in rows:
        assert record_of(json.loads(facts)) == parse_consent(resource)
    assert _listed(runtime, tokens) == {kept}


def test_a_consent_without_kept_facts_is_decided_from_its_resource(pilot, runtime, tokens) -> None:
    kept, withdrawn = pilot.enrol("0101901234"), pilot.enrol("0202902345")
    pilot.consent(kept)
    pilot.withdraw(pilot.consent(withdrawn))
    with runtime.sessions.begin() as session:
        session.execute(update(m.Consent).values(facts=None))
    assert _listed(runtime, tokens) == {kept}
    with runtime.sessions.begin() as session:  # facts of a format this code does not know: the same
        session.execute(update(m.Consent).values(facts=json.dumps({"format": 0})))
    assert _listed(runtime, tokens) == {kept}


def _backfilled(url: str) -> tuple[dict[str, str | None], dict[str, object]]:
    upgrade(url, "0008_h12morning")
    consents = {
        "c-active": treatment_consent("Patient/p1", start=date(2026, 1, 1), end=date(2026, 12, 31)),
        "c-withdrawn": treatment_consent("Patient/p1", status="inactive", purposes=("TREAT", "HRESCH")),
    }
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "insert into patient (id, patient_key, pilot, active, enrolled_at, enrolled_by)"
                    " values ('p1', 'pk1', 'pilot', :t, :at, 'admin')"
                ),
                {"t": True, "at": "2026-01-01 00:00:00"},
            )
            for cid, resource in consents.items():
                conn.execute(
                    text(
                        "insert into consent (id, patient_key, version, status, resource, recorded_at, recorded_by)"
                        " values (:id, 'pk1', 1, :status, :resource, '2026-01-01 00:00:00', 'admin')"
                    ),
                    {"id": cid, "status": resource["status"], "resource": json.dumps({**resource, "id": cid})},
                )
        upgrade(url)
        with engine.connect() as conn:
            found = dict(conn.execute(text("select id, facts from consent")).all())
        command.downgrade(alembic_config(url), "0008_h12morning")  # and down again: the column goes, the rows stay
        assert "facts" not in {c["name"] for c in inspect(engine).get_columns("consent")}
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from consent")).scalar() == len(consents)
    finally:
        engine.dispose()
    return found, {cid: parse_consent({**r, "id": cid}) for cid, r in consents.items()}


def _check(found: dict[str, str | None], parsed: dict[str, object]) -> None:
    assert set(found) == set(parsed)
    for cid, facts in found.items():
        assert facts is not None and record_of(json.loads(facts)) == parsed[cid]


def test_the_migration_backfills_the_facts_on_sqlite(tmp_path) -> None:
    _check(*_backfilled(f"sqlite:///{tmp_path / 'facts.sqlite3'}"))


def test_the_migration_backfills_the_facts_on_postgresql(postgresql_url) -> None:
    """On a database of its own (``postgresql_url`` only says the server is there)."""
    server = os.environ.get("HOMEDIAG_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
    with scratch_postgres_database(server, "homediag_consent_facts") as url:
        _check(*_backfilled(url))
