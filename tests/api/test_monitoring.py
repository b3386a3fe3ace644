"""Monitoring through the HTTP API: thresholds and plans (versioned), triage on FHIR reads, reviews, and who may."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.task import Task
from sqlalchemy import select

from homediag.adapters.devices.blood_pressure import encode
from homediag.adapters.devices.readings import DeviceTime
from homediag.adapters.devices.weight_scale import encode as encode_weight
from homediag.consent import treatment_consent
from homediag.store.models import AuditEvent, ReviewItem
from homediag.synthetic import envelope, synthetic_patients
from homediag.users import create_user

CPH = ZoneInfo("Europe/Copenhagen")
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
TRIAGE = "https://homediag.example.org/fhir/CodeSystem/triage-colour"


def hours_ago(hours: float) -> datetime:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0)


def cuff(client, tokens, patient, systolic: int, diastolic: int, taken: datetime) -> str:
    """One cuff reading taken at ``taken`` (aware); returns the blood-pressure Observation's id."""
    local = taken.astimezone(CPH)
    payload = encode(
        (Decimal(systolic), Decimal(diastolic), Decimal((systolic + 2 * diastolic) // 3)),
        timestamp=DeviceTime(local.year, local.month, local.day, local.hour, local.minute, local.second),
        user_id=1,
    )
    response = client.post(
        "/ingest", json=envelope(patient, payload, datetime.now(UTC)), headers=tokens.auth("gateway")
    )
    assert response.status_code == 201, response.text
    return next(o["id"] for o in response.json()["observations"] if o["code"] == "150020")


@pytest.fixture
def patient(client, tokens, pilot):
    synthetic = synthetic_patients(1, seed=12)[0]
    pid = pilot.enrol(synthetic.cpr, family=synthetic.family, given=synthetic.given)
    pilot.consent(pid)
    return synthetic, pid


def colours(observation: dict) -> tuple[str | None, str | None]:
    """(v3 code, triage colour) of an Observation's top-level interpretation."""
    codes = {c["system"]: c["code"] for concept in observation.get("interpretation", []) for c in concept["coding"]}
    return codes.get(V3), codes.get(TRIAGE)


def put_settings(client, tokens, pid: str, body: dict, version: int | None):
    headers = tokens.auth("clinician")
    if version is not None:
        headers["If-Match"] = f'W/"{version}"'
    return client.put(f"/monitoring/patients/{pid}/settings", json=body, headers=headers)


# -- triage on the FHIR API --------------------------------------------------------------------------------
def test_a_clinician_reads_observations_with_interpretation_and_reference_range(client, tokens, patient):
    synthetic, pid = patient
    high = cuff(client, tokens, synthetic, 150, 88, hours_ago(3))
    normal = cuff(client, tokens, synthetic, 120, 75, hours_ago(2))
    critical = cuff(client, tokens, synthetic, 185, 95, hours_ago(1))

    read = client.get(f"/fhir/Observation/{high}", headers=tokens.auth("clinician")).json()
    assert colours(read) == ("H", "yellow")
    systolic, diastolic = read["component"][0], read["component"][1]
    assert systolic["referenceRange"][0]["high"]["value"] == 135
    assert systolic["referenceRange"][0]["low"]["value"] == 100
    assert "thresholds version 0 (general)" in systolic["referenceRange"][0]["text"]
    assert systolic["interpretation"][0]["coding"][0]["code"] == "H"
    assert diastolic["interpretation"][0]["coding"][0]["code"] == "H"  # 88 >= 85
    Observation.model_validate(read)  # still valid FHIR R4B

    found = client.get(f"/fhir/Observation?patient={pid}&code=150020", headers=tokens.auth("clinician")).json()
    by_id = {e["resource"]["id"]: e["resource"] for e in found["entry"]}
    assert colours(by_id[normal]) == ("N", "green")
    assert colours(by_id[critical]) == ("HH", "red")
    for resource in by_id.values():
        Observation.model_validate(resource)


# -- settings: versions, who and when, re-triage ---------------------------------------------------------
def test_settings_are_versioned_with_who_and_when_and_a_stale_change_is_refused(client, tokens, patient, runtime):
    _synthetic, pid = patient
    first = client.get(f"/monitoring/patients/{pid}/settings", headers=tokens.auth("clinician"))
    assert first.status_code == 200
    assert first.headers["etag"] == 'W/"0"'
    assert first.json()["current"]["version"] == 0 and first.json()["current"]["group"] == "general"

    missing = put_settings(client, tokens, pid, {"group": "hypertension"}, None)
    assert missing.status_code == 400 and "If-Match" in missing.json()["issue"][0]["diagnostics"]

    done = put_settings(client, tokens, pid, {"group": "hypertension", "note": "new diagnosis"}, 0)
    assert done.status_code == 200, done.text
    assert done.headers["etag"] == 'W/"1"'
    v1 = done.json()
    assert (v1["version"], v1["group"], v1["recorded_by"], v1["note"]) == (
        1,
        "hypertension",
        tokens.ids["clinician"],
        "new diagnosis",
    )
    assert v1["plan"] == [{"measurement": "blood-pressure", "times": 2, "every_days": 1}]

    stale = put_settings(client, tokens, pid, {"group": "heart-failure"}, 0)
    assert stale.status_code == 412
    assert "version 1, not 0" in stale.json()["issue"][0]["diagnostics"]

    history = client.get(f"/monitoring/patients/{pid}/settings", headers=tokens.auth("clinician")).json()["history"]
    assert [v["version"] for v in history] == [1, 0]
    with runtime.sessions() as session:
        changes = session.execute(select(AuditEvent).where(AuditEvent.action == "monitoring-settings-change")).scalars()
        assert [e.actor for e in changes] == [tokens.ids["clinician"]]


def test_each_reading_is_triaged_by_the_version_in_force_at_its_time(client, tokens, patient):
    synthetic, pid = patient
    before = cuff(client, tokens, synthetic, 140, 80, hours_ago(48))
    after = cuff(client, tokens, synthetic, 140, 80, hours_ago(2))
    auth = tokens.auth("clinician")

    def colour_of(oid: str) -> str | None:
        return colours(client.get(f"/fhir/Observation/{oid}", headers=auth).json())[1]

    assert (colour_of(before), colour_of(after)) == ("yellow", "yellow")
    preview = client.post(
        f"/monitoring/patients/{pid}/settings/$preview",
        json={"thresholds": {"systolic": {"yellow_high": 145, "red_high": 180}}},
        headers=auth,
    ).json()
    assert preview["readings"] == 2 and preview["current"]["alerts"] == 2 and preview["alerts"] == 0

    valid_from = hours_ago(24).isoformat()
    changed = put_settings(
        client,
        tokens,
        pid,
        {"thresholds": {"systolic": {"yellow_high": 145, "red_high": 180}}, "valid_from": valid_from},
        0,
    )
    assert changed.status_code == 200, changed.text
    # the reading before the change keeps the colour of its time; the one after is re-triaged
    assert (colour_of(before), colour_of(after)) == ("yellow", "green")
    readings = client.get(f"/monitoring/patients/{pid}/readings?days=3", headers=auth).json()["readings"]
    assert [(r["colour"], r["settings_version"]) for r in readings] == [("yellow", 0), ("green", 1)]
    # a change back-dated before both re-triages both
    put_settings(client, tokens, pid, {"valid_from": hours_ago(72).isoformat()}, 1)
    assert (colour_of(before), colour_of(after)) == ("green", "green")


@pytest.mark.parametrize(
    ("body", "status", "expression"),
    [
        ({"thresholds": {"systolic": {"yellow_high": 150, "red_high": 140}}}, 422, "thresholds.systolic"),
        ({"plan": [{"measurement": "weight", "times": 99}]}, 422, "plan[0]"),
        ({"group": "astronauts"}, 422, "group"),
        ({"valid_from": "yesterday"}, 400, "valid_from"),
        ({"valid_from": "2026-03-01T08:00:00"}, 400, "valid_from"),
    ],
)
def test_bad_settings_are_refused_saying_where(client, tokens, patient, body, status, expression):
    _synthetic, pid = patient
    response = put_settings(client, tokens, pid, body, 0)
    assert response.status_code == status, response.text
    issue = response.json()["issue"][0]
    assert issue["expression"] == [expression]
    assert (
        client.get(f"/monitoring/patients/{pid}/settings", headers=tokens.auth("clinician")).json()["latest_version"]
        == 0
    )


# -- status, adherence, worklist -----------------------------------------------------------------------------
def test_status_is_blue_when_the_plan_is_not_followed_and_red_beats_blue(client, tokens, patient, pilot):
    synthetic, pid = patient
    auth = tokens.auth("clinician")
    put_settings(client, tokens, pid, {"group": "hypertension", "valid_from": hours_ago(24 * 10).isoformat()}, 0)
    for day in range(3):
        cuff(client, tokens, synthetic, 120, 75, hours_ago(24 * day + 2))
    status = client.get(f"/monitoring/patients/{pid}/status?days=3", headers=auth).json()
    assert status["colour"] == "blue"  # three readings where six were planned
    item = status["adherence"]["items"][0]
    assert (item["measurement"], item["expected"], item["received"]) == ("blood-pressure", 6, 3)
    assert any("3 of 6" in r for r in status["reasons"])
    assert status["latest"]["systolic"]["value"] == 120

    cuff(client, tokens, synthetic, 190, 100, hours_ago(1))
    status = client.get(f"/monitoring/patients/{pid}/status?days=3", headers=auth).json()
    assert status["colour"] == "red" and status["counts"]["red"] == 1

    # the worklist: most severe first; a green patient last
    other = synthetic_patients(2, seed=12)[1]
    other_id = pilot.enrol(other.cpr)
    pilot.consent(other_id)
    cuff(client, tokens, other, 118, 70, hours_ago(1))
    rows = client.get("/monitoring/worklist?days=3", headers=auth).json()["patients"]
    assert [(r["patient"], r["colour"]) for r in rows] == [(f"Patient/{pid}", "red"), (f"Patient/{other_id}", "green")]
    assert rows[0]["care_teams"] == [{"id": tokens.team, "name": "test team"}]
    # colours over the last day, adherence over the last 3 days: 4 of the 6 planned readings came
    narrow = client.get(f"/monitoring/patients/{pid}/status?days=1&adherence_days=3", headers=auth).json()
    assert narrow["colour"] == "red" and narrow["adherence"]["items"][0]["expected"] == 6
    assert narrow["adherence"]["items"][0]["received"] == 4


# -- reviews -----------------------------------------------------------------------------------------------
def test_acknowledge_one_reading_as_task_and_provenance(client, tokens, patient, runtime):
    synthetic, pid = patient
    auth = tokens.auth("clinician")
    taken = hours_ago(5)
    oid = cuff(client, tokens, synthetic, 160, 90, taken)
    response = client.post(
        f"/monitoring/patients/{pid}/acknowledge",
        json={"observations": [f"Observation/{oid}"], "note": "ringet op, har taget medicin"},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert response.headers["location"].endswith(f"/fhir/Task/{task['id']}")
    Task.model_validate(task)
    assert task["status"] == "completed" and task["for"]["reference"] == f"Patient/{pid}"
    assert [i["valueReference"]["reference"] for i in task["input"]] == [f"Observation/{oid}"]
    assert task["note"][0]["text"] == "ringet op, har taget medicin"

    assert client.get(f"/fhir/Task/{task['id']}", headers=auth).json() == task
    provenance = client.get(f"/fhir/Provenance/{task['id']}", headers=auth).json()
    Provenance.model_validate(provenance)
    assert {t["reference"] for t in provenance["target"]} == {f"Task/{task['id']}", f"Observation/{oid}"}
    assert provenance["agent"][0]["who"]["identifier"]["value"] == tokens.ids["clinician"]
    searched = client.get(f"/fhir/Task?patient={pid}", headers=auth).json()
    assert [e["resource"]["id"] for e in searched["entry"]] == [task["id"]]

    status = client.get(f"/monitoring/patients/{pid}/status?days=1", headers=auth).json()
    assert status["last_review"]["by"] == tokens.ids["clinician"]
    assert status["colour"] == "yellow" and status["open_colour"] == "green" and status["unacknowledged"] == 0

    with runtime.sessions() as session:
        item = session.execute(select(ReviewItem)).scalar_one()
        assert item.observation_id == oid and item.colour == "yellow"
        assert item.effective_at == taken.replace(tzinfo=None)
        assert item.received_at is not None and item.reviewed_at >= item.received_at
        audit = session.execute(select(AuditEvent).where(AuditEvent.action == "acknowledge")).scalar_one()
        assert audit.entity == f"Task/{task['id']}" and audit.actor == tokens.ids["clinician"]


def test_acknowledge_all_green_of_a_period(client, tokens, patient):
    synthetic, pid = patient
    auth = tokens.auth("clinician")
    greens = [cuff(client, tokens, synthetic, 120 + k, 75, hours_ago(10 - k)) for k in range(3)]
    yellow = cuff(client, tokens, synthetic, 150, 80, hours_ago(4))
    period = {"all_green": True, "start": hours_ago(24).isoformat(), "end": hours_ago(0).isoformat()}
    task = client.post(f"/monitoring/patients/{pid}/acknowledge", json=period, headers=auth)
    assert task.status_code == 201, task.text
    assert sorted(i["valueReference"]["reference"] for i in task.json()["input"]) == sorted(
        f"Observation/{g}" for g in greens
    )
    readings = client.get(f"/monitoring/patients/{pid}/readings?days=1", headers=auth).json()["readings"]
    assert {r["observation"]: r["acknowledged"] for r in readings} == {
        **{f"Observation/{g}": True for g in greens},
        f"Observation/{yellow}": False,
    }
    again = client.post(f"/monitoring/patients/{pid}/acknowledge", json=period, headers=auth)
    assert again.status_code == 422
    assert "no unacknowledged green reading" in again.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, "name the readings"),
        ({"observations": []}, 400, "empty"),
        ({"observations": "abc"}, 400, "list of ids"),
        ({"observations": ["not-a-reading"]}, 422, "Observation/not-a-reading"),
        ({"all_green": True, "start": "2026-13-01"}, 400, "start must be a date"),
        ({"obs": ["x"]}, 400, "unknown field 'obs'"),
    ],
)
def test_bad_acknowledgements_say_what_is_wrong(client, tokens, patient, body, status, words):
    _synthetic, pid = patient
    response = client.post(f"/monitoring/patients/{pid}/acknowledge", json=body, headers=tokens.auth("clinician"))
    assert response.status_code == status, response.text
    assert words in response.json()["issue"][0]["diagnostics"]


# -- who may ---------------------------------------------------------------------------------------------
def test_a_clinician_outside_the_team_or_without_consent_sees_nothing(client, tokens, patient, pilot, runtime):
    synthetic, pid = patient
    oid = cuff(client, tokens, synthetic, 150, 80, hours_ago(2))
    task = client.post(
        f"/monitoring/patients/{pid}/acknowledge", json={"observations": [oid]}, headers=tokens.auth("clinician")
    ).json()
    with runtime.sessions.begin() as session:
        _user, outsider_token = create_user(session, name="other clinician", role="clinician")
    outsider = {"Authorization": f"Bearer {outsider_token}"}
    for path in (
        f"/monitoring/patients/{pid}/status",
        f"/monitoring/patients/{pid}/settings",
        f"/monitoring/patients/{pid}/readings",
        f"/fhir/Task/{task['id']}",
        f"/fhir/Provenance/{task['id']}",
    ):
        response = client.get(path, headers=outsider)
        assert response.status_code == 404, (path, response.text)
        unknown = client.get(path.replace(pid, "no-such-patient").replace(task["id"], "no-such-task"), headers=outsider)
        assert response.json()["issue"][0]["code"] == unknown.json()["issue"][0]["code"] == "not-found"
    assert put_settings(client, tokens, pid, {}, 0).status_code == 200
    refused = client.put(
        f"/monitoring/patients/{pid}/settings", json={"version": 1}, headers={**outsider, "If-Match": 'W/"1"'}
    )
    assert refused.status_code == 404
    ack = client.post(f"/monitoring/patients/{pid}/acknowledge", json={"observations": [oid]}, headers=outsider)
    assert ack.status_code == 404
    assert client.get("/monitoring/worklist", headers=outsider).json()["patients"] == []
    assert client.get("/fhir/Task", headers=outsider).json().get("entry", []) == []

    for role in ("admin", "gateway"):
        assert client.get(f"/monitoring/patients/{pid}/status", headers=tokens.auth(role)).status_code == 403
        assert client.get("/monitoring/worklist", headers=tokens.auth(role)).status_code == 403

    with runtime.sessions() as session:
        denies = session.execute(
            select(AuditEvent).where(AuditEvent.actor != tokens.ids["clinician"], AuditEvent.outcome == "deny")
        ).scalars()
        assert any(e.action == "monitoring-status" and "care team" in (e.detail or "") for e in denies)

    # consent withdrawn: the team's own clinician sees nothing either
    consent = client.get(f"/fhir/Consent?patient={pid}", headers=tokens.auth("admin")).json()["entry"][0]["resource"]
    pilot.withdraw(consent)
    assert client.get(f"/monitoring/patients/{pid}/status", headers=tokens.auth("clinician")).status_code == 404
    assert client.get(f"/fhir/Task/{task['id']}", headers=tokens.auth("clinician")).status_code == 404
    assert client.get("/monitoring/worklist", headers=tokens.auth("clinician")).json()["patients"] == []


def test_a_cpr_typed_as_a_patient_id_is_neither_echoed_nor_audited(client, tokens, patient, runtime):
    cpr_like = "0101901234"
    response = client.get(f"/monitoring/patients/{cpr_like}/status", headers=tokens.auth("clinician"))
    assert response.status_code == 404 and cpr_like not in response.text
    with runtime.sessions() as session:
        assert not [e for e in session.execute(select(AuditEvent)).scalars() if cpr_like in (e.entity or "")]


def scale(client, tokens, patient, kg: str, taken: datetime) -> str:
    local = taken.astimezone(CPH)
    payload = encode_weight(
        Decimal(kg),
        timestamp=DeviceTime(local.year, local.month, local.day, local.hour, local.minute, local.second),
        user_id=1,
    )
    body = {**envelope(patient, payload, datetime.now(UTC)), "adapter": "ble-weight-scale"}
    response = client.post("/ingest", json=body, headers=tokens.auth("gateway"))
    assert response.status_code == 201, response.text
    return next(o["id"] for o in response.json()["observations"] if o["code"] == "188736")


def test_heart_failure_weight_gain_is_flagged_previewed_and_shown_as_a_significant_change_up(client, tokens, patient):
    synthetic, pid = patient
    auth = tokens.auth("clinician")
    scale(client, tokens, synthetic, "80.0", hours_ago(72))
    steady = scale(client, tokens, synthetic, "80.5", hours_ago(48))
    gained = scale(client, tokens, synthetic, "82.5", hours_ago(2))
    # the general set has no weight rule: nothing to flag
    assert colours(client.get(f"/fhir/Observation/{gained}", headers=auth).json()) == (None, None)
    preview = client.post(
        f"/monitoring/patients/{pid}/settings/$preview", json={"group": "heart-failure"}, headers=auth
    ).json()
    assert (preview["current"]["alerts"], preview["alerts"], preview["counts"]["yellow"]) == (0, 1, 1)
    put_settings(client, tokens, pid, {"group": "heart-failure", "valid_from": hours_ago(24 * 7).isoformat()}, 0)
    read = client.get(f"/fhir/Observation/{gained}", headers=auth).json()
    assert colours(read) == ("U", "yellow")  # +2.5 kg within 3 days
    Observation.model_validate(read)
    assert colours(client.get(f"/fhir/Observation/{steady}", headers=auth).json()) == ("N", "green")
    status = client.get(f"/monitoring/patients/{pid}/status?days=1", headers=auth).json()
    assert any("weight +2.5 kg within 3 days" in r for r in status["reasons"])


def test_the_weight_rule_compares_only_with_weights_the_consent_lets_the_clinician_see(client, tokens, pilot):
    synthetic = synthetic_patients(3, seed=12)[2]
    pid = pilot.enrol(synthetic.cpr)
    consent = treatment_consent(f"Patient/{pid}")
    consent["provision"]["dataPeriod"] = {"start": hours_ago(24).isoformat()}  # data of the last day only
    assert client.post("/fhir/Consent", json=consent, headers=tokens.auth("admin")).status_code == 201
    auth = tokens.auth("clinician")
    scale(client, tokens, synthetic, "80.0", hours_ago(60))  # before the consent's data period
    gained = scale(client, tokens, synthetic, "82.5", hours_ago(2))
    put_settings(client, tokens, pid, {"group": "heart-failure", "valid_from": hours_ago(24 * 7).isoformat()}, 0)
    read = client.get(f"/fhir/Observation/{gained}", headers=auth).json()
    assert colours(read) == (None, None)  # nothing visible to compare with
    readings = client.get(f"/monitoring/patients/{pid}/readings?days=5", headers=auth).json()["readings"]
    assert [(r["observation"], r["colour"]) for r in readings] == [(f"Observation/{gained}", None)]


def test_an_id_of_any_length_in_the_path_is_a_404_and_the_audit_says_its_start(client, tokens, runtime):
    """An id far longer than any of ours (found by schemathesis on PostgreSQL: the audit's entity column held 200
    characters, and the deny record made it a 500)."""
    long_id = "0" * 300
    for path in (f"/monitoring/patients/{long_id}/settings", f"/fhir/Observation/{long_id}"):
        response = client.get(path, headers=tokens.auth("clinician"))
        assert response.status_code == 404, response.text
        assert long_id not in response.text
    with runtime.sessions() as session:
        entities = session.execute(select(AuditEvent.entity).where(AuditEvent.outcome == "deny")).scalars().all()
    assert len(entities) == 2 and all(
        e is not None and e.startswith(("Patient/000", "Observation/000")) for e in entities
    )
    assert all(len(e) <= 200 for e in entities)
