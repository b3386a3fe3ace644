"""Issue 9, trust in the gateway: a cuff enrolled for one patient cannot file readings under another
patient of the same gateway; a relabelled manufacturer does not route uploads into another vendor's
log; readings dated year 1 or 1970 (a clock never set) are held for review, not stored."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from homediag import care
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import create_user
from tests.conftest import ADMIN


def _observations(runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(m.Observation)) or 0)


def _register(runtime, gateway: str, serial: str, *, patient_id: str | None = None, vendor: str | None = None):
    with runtime.sessions.begin() as session:
        care.allow_device(session, runtime.keys, ADMIN, gateway, serial, patient_id=patient_id, vendor=vendor)


def _reading(person, minutes_ago: int = 60, taken: datetime | None = None):
    taken = taken or datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(minutes=minutes_ago)
    return envelope(person, cuff_payload(random.Random(minutes_ago), taken), datetime.now(UTC))


@pytest.fixture
def two_patients(pilot):
    anna, bo = synthetic_patients(2, seed=505)
    ids = pilot.enrol(anna.cpr), pilot.enrol(bo.cpr)
    for patient_id in ids:
        pilot.consent(patient_id)
    return (anna, ids[0]), (bo, ids[1])


def test_a_cuff_enrolled_for_one_patient_cannot_file_readings_under_another(client, tokens, runtime, two_patients):
    (anna, anna_id), (bo, _bo_id) = two_patients
    _register(runtime, tokens.ids["gateway"], anna.cuff_serial, patient_id=anna_id)
    misfiled = _reading(bo)
    misfiled["device"] = _reading(anna)["device"]  # Anna's cuff, Bo's CPR
    response = client.post("/ingest", json=misfiled, headers=tokens.auth("gateway"))
    assert response.status_code == 422, response.text
    issue = response.json()["issues"]["issue"][0]
    assert "enrolled for another patient" in issue["diagnostics"] and issue["expression"] == ["envelope.device"]
    assert _observations(runtime) == 0
    with runtime.sessions() as session:
        [upload] = session.scalars(select(m.Upload)).all()
    assert upload.outcome == "rejected"  # kept in the upload log
    # Anna's own readings from her cuff are stored
    assert client.post("/ingest", json=_reading(anna), headers=tokens.auth("gateway")).status_code == 201


def test_the_cli_enrols_a_device_for_a_patient_and_a_vendor(runtime, tokens, two_patients):
    (anna, anna_id), _ = two_patients
    _register(runtime, tokens.ids["gateway"], anna.cuff_serial, patient_id=anna_id, vendor="Syntetisk Medico")
    with runtime.sessions() as session:
        row = session.get(m.GatewayDevice, (tokens.ids["gateway"], anna.cuff_serial))
        assert row is not None and row.vendor == "Syntetisk Medico" and row.patient_key
    with runtime.sessions.begin() as session, pytest.raises(care.Unknown, match="cannot be bound"):
        care.allow_device(session, runtime.keys, ADMIN, tokens.ids["gateway"], "*", patient_id=anna_id)


def test_a_relabelled_manufacturer_does_not_reach_another_vendors_upload_log(client, tokens, runtime, two_patients):
    (anna, anna_id), _ = two_patients
    _register(runtime, tokens.ids["gateway"], anna.cuff_serial, patient_id=anna_id, vendor="Syntetisk Medico")
    relabelled = _reading(anna)
    relabelled["device"]["manufacturer"] = "Anden Medico"
    assert client.post("/ingest", json=relabelled, headers=tokens.auth("gateway")).status_code == 201
    with runtime.sessions.begin() as session:
        _, theirs = create_user(session, name="anden", role="vendor", organisation="Anden Medico")
        _, ours = create_user(session, name="syntetisk", role="vendor", organisation="Syntetisk Medico")
    other = client.get("/uploads", headers={"Authorization": f"Bearer {theirs}"}).json()
    assert other["total"] == 0 and other["uploads"] == []
    registered = client.get("/uploads", headers={"Authorization": f"Bearer {ours}"}).json()
    assert registered["total"] == 1


@pytest.mark.parametrize(
    "taken", [datetime(1582, 1, 1, 12, 0), datetime(1970, 1, 1, 0, 0, 5), datetime(1999, 12, 31, 8)]
)  # the cuff's own field refuses years before 1582; a PHD gateway can send year 1 (below)
def test_a_reading_dated_before_2000_is_held_for_review_not_stored(client, tokens, runtime, two_patients, taken):
    (anna, _), _ = two_patients
    response = client.post("/ingest", json=_reading(anna, taken=taken), headers=tokens.auth("gateway"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["outcome"] == "held" and body["observations"] == []
    assert any("held for review" in i["diagnostics"] for i in body["issues"]["issue"])
    assert _observations(runtime) == 0
    with runtime.sessions() as session:
        assert [u.outcome for u in session.scalars(select(m.Upload))] == ["held"]


def test_a_reading_long_before_enrolment_is_held_one_shortly_before_is_stored(client, tokens, runtime, two_patients):
    (anna, _), _ = two_patients
    long_before = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(days=6 * 365)
    shortly_before = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(days=4 * 365)
    assert (
        client.post("/ingest", json=_reading(anna, taken=long_before), headers=tokens.auth("gateway")).json()["outcome"]
        == "held"
    )
    assert (
        client.post("/ingest", json=_reading(anna, taken=shortly_before), headers=tokens.auth("gateway")).json()[
            "outcome"
        ]
        == "created"
    )


@pytest.mark.parametrize("when", ["1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "1999-12-31T23:59:59+01:00"])
def test_a_phd_observation_dated_before_2000_is_refused_and_kept(client, tokens, runtime, two_patients, when):
    from tests.api.test_phd_gateway import spo2

    (_, anna_id), _ = two_patients
    observation = spo2(anna_id)
    observation["effectiveDateTime"] = when
    response = client.post("/fhir/Observation", json=observation, headers=tokens.auth("gateway"))
    assert response.status_code == 422, response.text
    assert "before 2000" in response.text
    assert _observations(runtime) == 0
    with runtime.sessions() as session:
        assert [u.outcome for u in session.scalars(select(m.Upload))] == ["rejected"]


def test_a_phd_device_enrolled_for_another_patient_is_refused(client, tokens, runtime, two_patients):
    from tests.api.test_phd_gateway import MRN, PATIENTS, bundle_1, enrol, post_bundle

    enrol(client, tokens, PATIENTS[0], MRN)  # the IG example's patient
    (_, anna_id), _ = two_patients
    bundle = bundle_1()
    eui64 = next(
        e["resource"]["identifier"][0]["value"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Device"
    )
    _register(runtime, tokens.ids["gateway"], eui64, patient_id=anna_id)  # the oximeter is Anna's
    response = post_bundle(client, tokens, bundle)
    assert response.status_code == 422, response.text
    assert "enrolled for another patient" in response.text
    assert _observations(runtime) == 0
