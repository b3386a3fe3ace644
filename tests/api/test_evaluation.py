"""The evaluator's HTTP face: ``GET /evaluation/export`` (a zip of the tidy tables, codebook and manifest) and
``GET /evaluation/MeasureReport`` (the metrics), on SQLite and PostgreSQL: only patients with a research consent,
only their consented data times, nobody after a withdrawal, no identity; other roles refused."""

from __future__ import annotations

import io
import json
import random
import zipfile
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
from fhir.resources.R4B.measurereport import MeasureReport

from homediag.access import AccessService
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import Principal, create_user

CPH = ZoneInfo("Europe/Copenhagen")


@pytest.fixture
def cohort(pilot, runtime):  # type: ignore[no-untyped-def]
    """Seven patients: four with research consent (one only for the last three days' data), one with treatment
    consent only, one who withdrew research consent, one with no consent; ten days of readings each, and a
    truncated upload of a consenting patient."""
    people = synthetic_patients(7, 99)
    plans = ["research", "research", "research", "period", "treat", "withdrawn", "none"]
    ids = {}
    since = datetime.now(CPH) - timedelta(days=3)
    for person, plan in zip(people, plans, strict=True):
        pid = pilot.enrol(person.cpr, person.family, person.given)
        ids[pid] = plan
        if plan in ("research", "withdrawn"):
            made = pilot.consent(pid, purposes=("HRESCH",))
            if plan == "withdrawn":
                pilot.withdraw(made)
        elif plan == "period":
            from homediag.consent import treatment_consent

            resource = treatment_consent(f"Patient/{pid}", purposes=("HRESCH",), scope="research")
            resource["provision"]["dataPeriod"] = {"start": since.isoformat()}
            answer = pilot.client.post("/fhir/Consent", json=resource, headers=pilot.tokens.auth("admin"))
            assert answer.status_code == 201, answer.text
        elif plan == "treat":
            pilot.consent(pid)
    rng = random.Random(5)
    now = datetime.now(CPH).replace(second=0, microsecond=0)
    envelopes = [
        envelope(p, cuff_payload(rng, (now - timedelta(days=d, hours=1)).replace(tzinfo=None)), now - timedelta(days=d))
        for p in people
        for d in range(10, 0, -1)
    ]
    envelopes.append(envelope(people[0], bytes.fromhex("1E8A005800"), now))
    answer = pilot.client.post("/ingest", json=envelopes, headers=pilot.tokens.auth("gateway"))
    assert answer.status_code == 200, answer.text
    with runtime.sessions.begin() as session:
        _, token = create_user(session, name="FIERS (synthetic)", role="evaluator", organisation="FIERS")
    return {"ids": ids, "people": people, "token": token, "since": since}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_evaluator_downloads_only_what_research_consent_permits(client, runtime, cohort) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/evaluation/export", headers=_auth(cohort["token"]))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    names = set(archive.namelist())
    assert {"manifest.json", "codebook.json", "codebook.md", "uploads.parquet", "events.parquet"} <= names
    manifest = json.loads(archive.read("manifest.json"))
    assert answer.headers["x-snapshot"] == manifest["snapshot"]
    readings = pq.read_table(io.BytesIO(archive.read("readings/part-00000.parquet"))).to_pylist()
    with runtime.sessions() as session:
        evaluator = session.query(m.User).filter(m.User.name == "FIERS (synthetic)").one()
    view = AccessService(runtime).view(Principal(evaluator.id, evaluator.name, "evaluator", evaluator.organisation))
    seen = {view.real_id("Patient", r["patient"]) for r in readings}
    assert seen == {pid for pid, plan in cohort["ids"].items() if plan in ("research", "period")}
    period = {pid for pid, plan in cohort["ids"].items() if plan == "period"}
    for r in readings:  # the evaluator sees each patient's times shifted by its offset: compare in real time
        real = str(view.real_id("Patient", r["patient"]))
        if real in period:
            assert r["effective"] - view.offset(real) >= cohort["since"]
    # the components (systolic, diastolic, mean) come out of the stored JSON in SQL, on either engine
    by_reading: dict[str, dict[str, float]] = {}
    for r in readings:
        assert r["value"] is not None and r["unit"] and r["code"] and r["device_clock_set"] is True
        by_reading.setdefault(r["reading"], {})[r["quantity"]] = r["value"]
    pressures = [q for q in by_reading.values() if "systolic" in q]
    assert pressures and all(q["systolic"] > q["diastolic"] > 0 for q in pressures)
    assert {r["unit"] for r in readings if r["quantity"] == "systolic"} == {"mm[Hg]"}
    assert any("pulse-rate" in q for q in by_reading.values())
    everything = b"".join(archive.read(n) for n in names)
    for person in cohort["people"]:
        for secret in (person.cpr, person.family, person.cuff_serial, person.cuff_address):
            assert secret.encode() not in everything
    uploads = pq.read_table(io.BytesIO(archive.read("uploads.parquet"))).to_pylist()
    rejected = [u for u in uploads if u["outcome"] == "rejected"]
    assert rejected and rejected[0]["reason"].endswith("envelope.payload_hex")
    assert sum(u["uploads"] for u in uploads if u["outcome"] == "created") == 40  # four research patients x 10


def test_the_metrics_as_measure_reports(client, cohort) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(CPH).date()
    answer = client.get(
        "/evaluation/MeasureReport",
        # the evaluator's times are shifted per patient (up to 60 days either way): a window that holds them all
        params={"from": (today - timedelta(days=120)).isoformat(), "to": (today + timedelta(days=90)).isoformat()},
        headers=_auth(cohort["token"]),
    )
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    reports = [MeasureReport.model_validate(e["resource"]) for e in bundle["entry"]]
    retention = next(r for r in reports if r.measure.endswith("retention"))
    counts = [p.count for s in retention.group[0].stratifier[0].stratum for p in s.population]
    assert all(c is None or c >= 5 for c in counts)  # four patients: every count is masked
    assert None in counts


def test_an_unknown_format_is_a_clear_error(client, cohort) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/evaluation/export", params={"format": "xlsx"}, headers=_auth(cohort["token"]))
    assert answer.status_code == 400
    assert "must be one of parquet, csv" in answer.json()["issue"][0]["diagnostics"]


def test_a_bad_date_is_a_clear_error(client, cohort) -> None:  # type: ignore[no-untyped-def]
    answer = client.get("/evaluation/MeasureReport", params={"from": "2026-13-01", "to": "2026-12-01"},
                        headers=_auth(cohort["token"]))  # fmt: skip
    assert answer.status_code == 400
    assert "from must be a date" in answer.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("role", ["clinician", "admin", "gateway"])
def test_other_roles_are_refused(client, tokens, role) -> None:  # type: ignore[no-untyped-def]
    for path in ("/evaluation/export", "/evaluation/MeasureReport?from=2026-01-01&to=2026-01-31"):
        answer = client.get(path, headers=tokens.auth(role))
        assert answer.status_code == 403
        assert answer.json()["resourceType"] == "OperationOutcome"
    assert client.get("/evaluation/export").status_code == 401
