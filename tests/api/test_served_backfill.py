"""Migration 0006 back-fills each stored Observation's served text and marks, on both engines (PostgreSQL:
through the monthly partitions), from the resource as stored: decimals as they were sent."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal

import simplejson
from sqlalchemy import create_engine, text

from homediag.fhir_profiles import fhirjson
from homediag.store.database import upgrade
from homediag.store.scratch import scratch_postgres_database

PANEL = {
    "resourceType": "Observation",
    "id": "obs-panel",
    "meta": {"profile": ["http://hl7.org/fhir/uv/phd/StructureDefinition/PhdCompoundNumericObservation"]},
    "status": "final",
    "component": [
        {"code": {"text": "systolic"}, "valueQuantity": {"value": Decimal("120.50"), "code": "mm[Hg]"}},
        {"code": {"text": "diastolic"}, "valueQuantity": {"value": Decimal("80.0"), "code": "mm[Hg]"}},
    ],
}
OWN_INTERPRETATION = {"resourceType": "Observation", "id": "obs-own", "interpretation": [{"text": "as sent"}]}


def _backfilled(url: str) -> dict[str, tuple[str, str | None]]:
    upgrade(url, "0005_h9robust")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for n, resource in enumerate((PANEL, OWN_INTERPRETATION)):
                at = datetime.now() - timedelta(days=1 + 40 * n)
                conn.execute(
                    text(
                        "insert into observation (id, patient_key, code, category, codes, effective_start,"
                        " effective_end, status, dedup, resource, received_at)"
                        " values (:id, 'pk', '150020', 'vital-signs', '', :at, :at, 'final', :id, :resource, :at)"
                    ),
                    {"id": resource["id"], "at": at, "resource": fhirjson.dumps(resource)},
                )
        upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(text("select id, served_json, served_marks from observation")).all()
    finally:
        engine.dispose()
    return {row_id: (served, marks) for row_id, served, marks in rows}


def _check(found: dict[str, tuple[str, str | None]]) -> None:
    panel_text, panel_marks = found["obs-panel"]
    assert simplejson.loads(panel_text, use_decimal=True) == PANEL
    assert '"value":120.50' in panel_text and '"value":80.0' in panel_text
    assert panel_marks is not None and panel_marks.count(",") == 1  # meta's brace | two components
    own_text, own_marks = found["obs-own"]
    assert simplejson.loads(own_text) == OWN_INTERPRETATION and own_marks is None  # served by parsing


def test_the_migration_backfills_the_served_text_on_sqlite(tmp_path):
    _check(_backfilled(f"sqlite:///{tmp_path / 'backfill.sqlite3'}"))


def test_the_migration_backfills_the_served_text_on_postgresql(postgresql_url):
    """On a database of its own (``postgresql_url`` only says the server is there)."""
    server = os.environ.get("HOMEDIAG_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
    with scratch_postgres_database(server, "homediag_backfill") as url:
        _check(_backfilled(url))
