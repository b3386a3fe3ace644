"""PostgreSQL: ``observation`` partitioned by month (migration 0005, ``homediag.store.partitions``); on both
engines the dedup claims that keep a reading stored once."""

from __future__ import annotations

import os
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, func, select, text

from homediag.store import models as m
from homediag.store.partitions import ensure_observation_partitions, partition_name
from homediag.store.scratch import scratch_postgres_database
from homediag.synthetic import cuff_payload, envelope, synthetic_patients

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
PATIENTS = synthetic_patients(2, seed=31)  # synthetic CPRs only
BP_LOINC = "http://loinc.org|85354-9"


def _reading(days_ago: int, seed: int) -> dict:
    taken = datetime.now(COPENHAGEN).replace(microsecond=0, tzinfo=None) - timedelta(days=days_ago, minutes=seed)
    return envelope(PATIENTS[0], cuff_payload(random.Random(seed), taken), datetime.now(UTC) - timedelta(minutes=1))


def _postgres_only(runtime) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("partitioning is PostgreSQL's; SQLite keeps one table")


def test_readings_land_in_the_partition_of_their_month_and_a_series_reads_only_recent_ones(
    client, tokens, runtime, pilot
):
    _postgres_only(runtime)
    patient = pilot.enrol(PATIENTS[0].cpr)
    pilot.consent(patient)
    sent = [_reading(0, 1), _reading(40, 2), _reading(200, 3)]
    response = client.post("/ingest", json=sent, headers=tokens.auth("gateway"))
    assert [r["outcome"] for r in response.json()["results"]] == ["created"] * 3, response.text
    with runtime.engine.connect() as conn:
        placed = conn.execute(
            text("select tableoid::regclass::text, effective_start from observation order by effective_start")
        ).all()
        indexed = {
            r[0]
            for r in conn.execute(
                text(
                    "select tablename from pg_indexes"
                    " where indexdef like '%(patient_key, code, effective_start DESC, id DESC)%'"
                )
            )
        }
    for table, when in placed:
        assert table == partition_name(when.date().replace(day=1))
        assert table in indexed  # the series index on every partition

    since = (datetime.now(COPENHAGEN) - timedelta(days=90)).date().isoformat()
    found = client.get(
        "/fhir/Observation",
        params={"patient": patient, "code": BP_LOINC, "date": f"ge{since}"},
        headers=tokens.auth("clinician"),
    )
    assert found.status_code == 200 and found.json()["total"] == 2  # 0 and 40 days ago
    old = partition_name(placed[0][1].date().replace(day=1))  # the reading of 200 days ago
    with runtime.engine.connect() as conn:
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                text(
                    "explain select id from observation where patient_key = 'x' and code = '150020'"
                    " and effective_start >= :since order by effective_start desc"
                ),
                {"since": datetime.fromisoformat(since)},
            )
        )
    assert old not in plan, plan  # pruned: the series query never reads the months before its window


def test_partitions_are_made_ahead_once(runtime):
    _postgres_only(runtime)
    later = date.today() + timedelta(days=400)
    with runtime.engine.begin() as conn:
        made = ensure_observation_partitions(conn, later, back=0, ahead=2)
        again = ensure_observation_partitions(conn, later, back=0, ahead=2)
    assert made == [partition_name(later.replace(day=1))] + made[1:] and len(made) == 3
    assert again == []


def test_a_reading_is_stored_once_when_its_list_holds_it_twice_and_when_it_is_sent_again(
    client, tokens, runtime, pilot
):
    pilot.enrol(PATIENTS[0].cpr)
    reading = _reading(3, 7)
    first = client.post("/ingest", json=[reading, reading], headers=tokens.auth("gateway")).json()["results"]
    assert [r["outcome"] for r in first] == ["created", "duplicate"]
    again = client.post("/ingest", json=reading, headers=tokens.auth("gateway"))
    assert again.json()["outcome"] == "duplicate"
    with runtime.sessions() as session:
        stored = session.scalar(select(func.count()).select_from(m.Observation))
        claims = session.scalar(select(func.count()).select_from(m.ObservationDedup))
    assert stored == claims == len(first[0]["observations"])


def test_the_partitioned_table_goes_down_to_0004_and_up_again_with_its_rows(postgresql_url):
    """On a database of its own (``postgresql_url`` only says the server is there)."""
    from alembic import command

    from homediag.store.database import alembic_config, upgrade

    server = os.environ.get("HOMEDIAG_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
    with scratch_postgres_database(server, "homediag_partitions") as url:
        upgrade(url, "0004")
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                for n, days in enumerate((1, 45, 3000)):  # the last older than every partition: the default one
                    at = datetime.now() - timedelta(days=days)
                    conn.execute(
                        text(
                            "insert into observation (id, patient_key, code, category, codes, effective_start,"
                            " effective_end, status, dedup, resource, received_at)"
                            " values (:id, 'pk', '150020', 'vital-signs', '', :at, :at, 'final', :dedup, '{}', :at)"
                        ),
                        {"id": f"obs-{n}", "at": at, "dedup": f"dedup-{n}"},
                    )
            upgrade(url)
            with engine.connect() as conn:
                tables = dict(conn.execute(text("select id, tableoid::regclass::text from observation")).all())
                claims = conn.execute(text("select count(*) from observation_dedup")).scalar_one()
            assert tables["obs-2"] == "observation_default" and tables["obs-0"].startswith("observation_20")
            assert claims == 3

            command.downgrade(alembic_config(url), "0004")
            with engine.connect() as conn:
                partitioned = conn.execute(
                    text("select count(*) from pg_partitioned_table p join pg_class c on c.oid = p.partrelid")
                ).scalar_one()
                rows = conn.execute(text("select count(*) from observation")).scalar_one()
            assert partitioned == 0 and rows == 3
            upgrade(url)
            with engine.connect() as conn:
                rows = conn.execute(text("select count(*) from observation")).scalar_one()
            assert rows == 3
        finally:
            engine.dispose()
