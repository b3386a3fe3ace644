"""The evaluation export: consent scope, no identities, files readable by other tools, codebook, manifest,
atomic and resumable writing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from evaluation_support import all_bytes, evaluator_fixture, exported_fixture, research_pilot_fixture  # noqa: F401

from homediag.access import AccessService
from homediag.evaluation.export import ExportResult, export, sha256_file
from homediag.evaluation.pilot import ResearchPilot
from homediag.evaluation.tables import TABLES
from homediag.store import models as m
from homediag.synthetic import synthetic_patients
from homediag.users import Principal


def _patients(exported: ExportResult) -> set[str]:
    return {
        r[0] for r in duckdb.sql(f"SELECT DISTINCT patient FROM '{exported.directory}/readings/*.parquet'").fetchall()
    }


def test_only_patients_with_a_research_consent_are_exported(
    research_pilot: ResearchPilot, evaluator: Principal, exported: ExportResult
) -> None:
    view = AccessService(research_pilot.runtime).view(evaluator)
    real = {view.real_id("Patient", p) for p in _patients(exported)}
    wanted = {pid for pid, plan in research_pilot.research.items() if plan in ("research", "period")}
    assert real == wanted
    assert not real & {pid for pid, plan in research_pilot.research.items() if plan in ("none", "withdrawn")}
    assert exported.manifest["patients"] == len(wanted)


def test_a_data_period_consent_exports_only_readings_of_that_period(
    research_pilot: ResearchPilot, evaluator: Principal, exported: ExportResult
) -> None:
    view = AccessService(research_pilot.runtime).view(evaluator)
    period = {pid for pid, plan in research_pilot.research.items() if plan == "period"}
    assert period
    rows = duckdb.sql(
        f"SELECT patient, min(effective), count(*) FROM '{exported.directory}/readings/*.parquet' GROUP BY patient"
    ).fetchall()
    # the evaluator sees each patient's times shifted by its own offset: compare in real time
    real = {p: view.real_id("Patient", p) for p, _, _ in rows}
    limited = [(first - view.offset(str(real[p])), n) for p, first, n in rows if real[p] in period]
    assert limited and all(first >= research_pilot.period_start.astimezone(UTC) for first, _ in limited)
    with research_pilot.runtime.sessions() as s:  # the store holds older readings of those patients
        keys = s.query(m.Patient.patient_key).filter(m.Patient.id.in_(period)).all()
        older = s.query(m.Observation).filter(
            m.Observation.patient_key.in_([k for (k,) in keys]),
            m.Observation.effective_start < research_pilot.period_start.astimezone(UTC).replace(tzinfo=None),
        )
        assert older.count() > 0


def test_no_identity_in_any_file(research_pilot: ResearchPilot, exported: ExportResult) -> None:
    data = all_bytes(exported.directory)
    for person in synthetic_patients(16, 7):
        for secret in (person.cpr, person.family, person.cuff_serial, person.cuff_address):
            assert secret.encode() not in data, secret
    for pid in research_pilot.research:  # not even the platform's own patient ids
        assert pid.encode() not in data


def test_tables_are_readable_and_described_by_the_codebook(exported: ExportResult) -> None:
    d = exported.directory
    codebook = json.loads((d / "codebook.json").read_text())
    described = {t["name"]: [c["name"] for c in t["columns"]] for t in codebook["tables"]}
    for table in TABLES:
        files = exported.manifest["tables"][table.name]
        assert files
        schema = pq.read_schema(d / files[0])
        assert schema.names == described[table.name]
    assert {"alerts", "acknowledgements"} <= described.keys()
    quantities = dict(
        duckdb.sql(f"SELECT quantity, any_value(unit) FROM '{d}/readings/*.parquet' GROUP BY 1").fetchall()
    )
    assert quantities["systolic"] == "mm[Hg]" and quantities["pulse-rate"] == "/min"
    for name, entry in exported.manifest["files"].items():
        assert sha256_file(d / name) == entry["sha256"]
    assert exported.manifest["software"]["homediag"]


def test_csv_export_holds_the_same_readings(
    research_pilot: ResearchPilot, evaluator: Principal, exported: ExportResult, tmp_path: Path
) -> None:
    csv = export(AccessService(research_pilot.runtime), evaluator, tmp_path / "csv", fmt="csv", part_patients=4)
    table = pacsv.read_csv(tmp_path / "csv" / "readings" / "part-00000.csv")
    assert table.column_names == [c.name for c in TABLES[0].columns]
    n_csv = duckdb.sql(f"SELECT count(*) FROM read_csv('{tmp_path}/csv/readings/*.csv')").fetchall()
    n_parquet = duckdb.sql(f"SELECT count(*) FROM '{exported.directory}/readings/*.parquet'").fetchall()
    assert n_csv == n_parquet and csv.manifest["patients"] == exported.manifest["patients"]


def test_an_interrupted_export_leaves_no_target_and_resumes(
    research_pilot: ResearchPilot, evaluator: Principal, exported: ExportResult, tmp_path: Path
) -> None:
    access = AccessService(research_pilot.runtime)
    out = tmp_path / "resumed"

    def interrupt(part: int) -> None:
        if part == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(access, evaluator, out, part_patients=4, after_part=interrupt)
    assert not out.exists()
    partial = tmp_path / ".resumed.partial"
    assert sorted(p.name for p in (partial / "readings").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    result = export(access, evaluator, out, part_patients=4)
    assert result.resumed_parts == 2
    assert not partial.exists()
    assert result.manifest["snapshot"] == exported.manifest["snapshot"]


def test_an_existing_target_is_refused(research_pilot: ResearchPilot, evaluator: Principal, tmp_path: Path) -> None:
    from homediag.errors import BadRequest

    (tmp_path / "there").mkdir()
    with pytest.raises(BadRequest, match="exists already"):
        export(AccessService(research_pilot.runtime), evaluator, tmp_path / "there")


def test_only_an_evaluator_receives_evaluation_data(research_pilot: ResearchPilot, tmp_path: Path) -> None:
    from homediag.errors import Forbidden

    clinician = Principal("someone", "Dr. X (synthetic)", "clinician", None)
    with pytest.raises(Forbidden):
        export(AccessService(research_pilot.runtime), clinician, tmp_path / "x")


def test_two_evaluators_exports_share_no_id(
    research_pilot: ResearchPilot, exported: ExportResult, tmp_path: Path
) -> None:
    from homediag.users import create_user

    rt = research_pilot.runtime
    with rt.sessions.begin() as session:
        other, _ = create_user(session, name="another evaluator (synthetic)", role="evaluator", organisation="Other")
        other_id = other.id
    theirs = export(AccessService(rt), Principal(other_id, "x", "evaluator", "Other"), tmp_path / "other")
    ids = "SELECT DISTINCT reading, patient, device FROM '{}/readings/*.parquet'"
    mine = {v for row in duckdb.sql(ids.format(exported.directory)).fetchall() for v in row}
    their = {v for row in duckdb.sql(ids.format(theirs.directory)).fetchall() for v in row}
    assert len(their) > 1 and not mine & their


def test_alerts_are_monitorings_red_and_yellow_readings_of_consenting_patients(
    research_pilot: ResearchPilot, evaluator: Principal, exported: ExportResult
) -> None:
    from homediag.monitoring import store

    d = exported.directory
    alerts = duckdb.sql(f"SELECT reading, patient, colour, acknowledged FROM '{d}/alerts/*.parquet'").fetchall()
    assert alerts and {c for _, _, c, _ in alerts} <= {"red", "yellow"}
    assert any(a for *_, a in alerts) and not all(a for *_, a in alerts)  # some acknowledged, some not
    readings = {r[0] for r in duckdb.sql(f"SELECT DISTINCT reading FROM '{d}/readings/*.parquet'").fetchall()}
    assert {r for r, *_ in alerts} <= readings  # an alert is a reading the evaluator received
    view = AccessService(research_pilot.runtime).view(evaluator)
    expected: set[str] = set()  # monitoring's own triage (the clinician's worklist path), independently
    with research_pilot.runtime.sessions() as session:
        for (pid,) in duckdb.sql(f"SELECT DISTINCT patient FROM '{d}/readings/*.parquet'").fetchall():
            real = view.real_id("Patient", pid)
            pkey = session.query(m.Patient.patient_key).filter(m.Patient.id == real).scalar()
            query = f"SELECT DISTINCT reading FROM '{d}/readings/*.parquet' WHERE patient = '{pid}'"
            ids = [view.real_id("Observation", r) for (r,) in duckdb.sql(query).fetchall()]
            data = store.patients_data(session, [pkey], datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC),
                                       only={i for i in ids if i})  # fmt: skip
            expected |= {r.id for r in data[pkey].readings if r.colour in ("red", "yellow")}
    assert {view.real_id("Observation", r) for r, *_ in alerts} == expected


def test_acknowledgements_are_delays_consistent_with_the_readings_and_name_no_clinician(
    research_pilot: ResearchPilot, exported: ExportResult
) -> None:
    d = exported.directory
    rows = duckdb.sql(
        f"""SELECT a.delay_reading_to_acknowledgement_s, epoch(a.acknowledged) - epoch(r.effective), a.review
            FROM '{d}/acknowledgements/*.parquet' a
            JOIN (SELECT DISTINCT reading, effective FROM '{d}/readings/*.parquet') r USING (reading)"""
    ).fetchall()
    assert rows and {review for *_, review in rows} == {"readings", "all-green"}
    # both times are shifted by the patient's one offset, so their difference is the real delay
    assert all(abs(delay - shown) < 1e-3 for delay, shown, _ in rows)
    n = duckdb.sql(f"SELECT count(*) FROM '{d}/acknowledgements/*.parquet'").fetchall()[0][0]
    assert n == len(rows)  # every acknowledged reading is one the evaluator received
    data = all_bytes(d)
    assert b"Klinikersen" not in data and research_pilot.demo.tokens["clinician"].encode() not in data


def test_readings_whose_stored_text_is_not_back_filled_export_the_same_tables(
    research_pilot: ResearchPilot, evaluator: Principal, exported: ExportResult, tmp_path: Path
) -> None:
    """A reading stored before ``observation.served_json`` existed (NULL until back-filled) is read from its
    resource: the same readings and alerts, byte for byte. On SQLite, where the text is stored once (as the
    resource, ``served_json`` NULL), the other way round: a reading stored with its text twice, as before."""
    engine = research_pilot.runtime.engine
    with engine.begin() as conn:
        saved = conn.execute(sa.select(m.Observation.id, m.Observation.served_json)).all()
        if engine.dialect.name == "postgresql":
            assert saved and all(text is not None for _, text in saved)
            conn.execute(sa.update(m.Observation).values(served_json=None))
        else:
            assert saved and all(text is None for _, text in saved)
            conn.execute(sa.text("UPDATE observation SET served_json = resource"))
    try:
        again = export(AccessService(research_pilot.runtime), evaluator, tmp_path / "again", part_patients=4)
    finally:
        with engine.begin() as conn:
            table = m.Observation.__table__
            conn.execute(
                table.update().where(table.c.id == sa.bindparam("oid")).values(served_json=sa.bindparam("text")),
                [{"oid": oid, "text": text} for oid, text in saved],
            )
    assert again.manifest["snapshot"] == exported.manifest["snapshot"]
    assert again.manifest["files"]["alerts/part-00000.parquet"]["rows"] > 0
