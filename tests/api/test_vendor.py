"""The vendor face through the real ASGI app, on SQLite and PostgreSQL: ``POST /sandbox/{adapter}``
(the Bundle and the validation outcome, nothing stored, audited) and ``GET /uploads`` (the
vendor's own devices' upload log, never an identity, nothing of other vendors)."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from homediag.envelope import EnvelopeDevice
from homediag.ingest import device_id
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import create_user

FIXTURES = Path(__file__).parents[1] / "fixtures"
VECTORS = {
    v["id"]: v for v in json.loads((FIXTURES / "ble" / "third-party-vectors.json").read_text())["characteristics"]
}
BP_FULL = VECTORS["nordic-bp-full"]["hex"]
BP_KPA = VECTORS["nordic-bp-kpa"]["hex"]
GOLDEN = FIXTURES / "conformance" / "ble-blood-pressure"
PATIENTS = synthetic_patients(3, seed=11)  # synthetic CPRs only
MAKER = "Syntetisk Medico"  # synthetic.envelope()'s manufacturer


def make_user(runtime, role: str, organisation: str | None) -> dict[str, str]:
    with runtime.sessions.begin() as session:
        _, token = create_user(session, name=f"test {role} {organisation}", role=role, organisation=organisation)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def vendor(runtime) -> dict[str, str]:
    return make_user(runtime, "vendor", MAKER)


def count(runtime, model) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def audit_events(runtime, action: str) -> list[m.AuditEvent]:
    with runtime.sessions() as session:
        return list(
            session.scalars(select(m.AuditEvent).where(m.AuditEvent.action == action).order_by(m.AuditEvent.seq))
        )


# -- POST /sandbox/{adapter} -----------------------------------------------------------------------------
def test_sandbox_returns_the_bundle_and_outcome_and_stores_nothing(client, runtime, vendor):
    response = client.post("/sandbox/ble-blood-pressure", json={"payload_hex": BP_FULL}, headers=vendor)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["verdict"] == "accepted"
    # the same fixed context as the conformance kit: the kit's golden file is the sandbox's answer
    assert body["bundle"] == json.loads((GOLDEN / "nordic-bp-full.expected.json").read_text())
    assert body["outcome"]["resourceType"] == "OperationOutcome"
    assert not [i for i in body["outcome"]["issue"] if i["severity"] in ("error", "fatal")]
    assert count(runtime, m.Upload) == 0 and count(runtime, m.Observation) == 0 and count(runtime, m.Device) == 0
    [event] = audit_events(runtime, "sandbox")
    assert event.role == "vendor" and event.outcome == "accepted" and event.entity == "adapter/ble-blood-pressure"
    assert event.patient_key is None


def test_sandbox_takes_the_envelope_shape_without_a_patient(client, vendor):
    device = {"manufacturer": MAKER, "model": "BPM-1", "serial": "SYN-BPM-99999"}
    body = {
        "adapter": "ble-blood-pressure",
        "payload_base64": base64.b64encode(bytes.fromhex(BP_FULL)).decode(),
        "device": device,
        "gateway": {"id": "tablet-1"},
        "received_at": "2026-11-20T08:00:00+01:00",
    }
    response = client.post("/sandbox/ble-blood-pressure", json=body, headers=vendor)
    assert response.status_code == 200, response.text
    bp = response.json()["bundle"]["entry"][0]["resource"]
    assert bp["subject"] == {"reference": "Patient/example"}
    assert bp["device"] == {"reference": f"Device/{device_id(EnvelopeDevice(**device))}"}
    assert bp["effectiveDateTime"] == "2026-11-20T08:00:00+01:00"  # year unknown: the given receive time


def test_sandbox_answers_422_when_the_adapter_refuses(client, runtime, vendor):
    response = client.post("/sandbox/ble-blood-pressure", json={"payload_hex": BP_FULL[:-2]}, headers=vendor)
    assert response.status_code == 422
    [issue] = response.json()["issue"]
    assert issue["severity"] == "error"
    assert "field 'measurement_status', byte offset 17" in issue["diagnostics"]
    assert issue["expression"] == ["payload_hex"]
    bad_hex = client.post("/sandbox/ble-blood-pressure", json={"payload_hex": "1e8a0zz"}, headers=vendor)
    assert bad_hex.status_code == 422 and "not valid hexadecimal" in bad_hex.json()["issue"][0]["diagnostics"]
    wrong_kind = client.post("/sandbox/ble-blood-pressure", json={"data": {"systolic": 120}}, headers=vendor)
    assert wrong_kind.status_code == 422 and "this adapter reads bytes" in wrong_kind.json()["issue"][0]["diagnostics"]
    assert [e.outcome for e in audit_events(runtime, "sandbox")] == ["refused"] * 3
    assert count(runtime, m.Upload) == 0


def test_sandbox_shows_what_the_profile_rules_would_refuse(client, vendor):
    response = client.post(
        "/sandbox/ble-blood-pressure", json={"payload_hex": "00F40158007800"}, headers=vendor
    )  # 500 mmHg
    assert response.status_code == 200
    body = response.json()
    assert body["verdict"] == "rejected"
    [error] = [i for i in body["outcome"]["issue"] if i["severity"] == "error"]
    assert "outside the physiologic limits" in error["diagnostics"]
    assert error["expression"] == ["Bundle.entry[0].resource.component[0].valueQuantity.value"]


def test_sandbox_refuses_a_patient_and_never_echoes_it(client, runtime, vendor):
    cpr = PATIENTS[0].cpr
    body = {"payload_hex": BP_FULL, "patient": {"system": "urn:oid:1.2.208.176.1.2", "value": cpr}}
    response = client.post("/sandbox/ble-blood-pressure", json=body, headers=vendor)
    assert response.status_code == 400
    assert "the sandbox takes no patient" in response.text
    assert cpr not in response.text
    assert all(cpr not in (e.detail or "") for e in audit_events(runtime, "sandbox"))
    assert count(runtime, m.Upload) == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/sandbox/ble-glucose-meter", {"payload_hex": BP_FULL}, 404, "no adapter 'ble-glucose-meter'"),
        (
            "/sandbox/ble-blood-pressure",
            {"adapter": "ble-thermometer", "payload_hex": BP_FULL},
            400,
            "leave 'adapter' out",
        ),
        (
            "/sandbox/ble-blood-pressure",
            {"payload_hex": BP_FULL, "payload_base64": "AA=="},
            400,
            "exactly one of payload_hex",
        ),
        ("/sandbox/ble-blood-pressure", {"payload_hex": BP_FULL, "colour": "blue"}, 400, "colour"),
        ("/sandbox/ble-blood-pressure", [BP_FULL], 400, "a JSON object"),
    ],
)
def test_sandbox_says_what_is_wrong_with_a_request(client, vendor, path, body, status, says):
    response = client.post(path, json=body, headers=vendor)
    assert response.status_code == status
    assert says in response.json()["issue"][0]["diagnostics"]


def test_sandbox_body_that_is_not_json(client, vendor):
    response = client.post("/sandbox/ble-blood-pressure", content=b"{nope", headers=vendor)
    assert response.status_code == 400 and "not JSON" in response.text


def test_sandbox_roles(client, runtime, tokens):
    body = {"payload_hex": BP_KPA}
    assert client.post("/sandbox/ble-blood-pressure", json=body, headers=tokens.auth("admin")).status_code == 200
    for role in ("clinician", "gateway"):
        assert client.post("/sandbox/ble-blood-pressure", json=body, headers=tokens.auth(role)).status_code == 403
    assert (
        client.post(
            "/sandbox/ble-blood-pressure", json=body, headers=make_user(runtime, "evaluator", "FIERS")
        ).status_code
        == 403
    )
    assert client.post("/sandbox/ble-blood-pressure", json=body).status_code == 401
    assert [e.role for e in audit_events(runtime, "sandbox")] == ["admin"]


# -- GET /uploads ---------------------------------------------------------------------------------------------
def _received(minutes_ago: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)


@pytest.fixture
def upload_log(client, runtime, tokens, pilot) -> dict:
    """Uploads from Syntetisk Medico's cuffs (created, duplicate, refused by the adapter, refused for an
    unenrolled patient) and one from another maker's cuff, in that order."""
    enrolled, other, unenrolled = PATIENTS
    enrolled_id, other_id = pilot.enrol(enrolled.cpr), pilot.enrol(other.cpr)
    ids = {enrolled_id, other_id}
    pilot.consent(enrolled_id, purposes=("TREAT", "HTEST"))  # this patient permits product testing; the other does not
    taken = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(hours=2)
    ours = envelope(enrolled, cuff_payload(random.Random(1), taken), _received(5))
    refused = {**envelope(enrolled, b"", _received(4)), "payload_hex": BP_FULL[:-2]}
    refused["device"] = {**refused["device"], "serial": "SYN-BPM-NEVER-STORED"}  # a device never stored before
    theirs = envelope(other, cuff_payload(random.Random(2), taken), _received(3))
    theirs["device"] = {**theirs["device"], "manufacturer": "Anden Medico"}
    stranger = envelope(unenrolled, cuff_payload(random.Random(3), taken), _received(2))
    results = []
    for body in (ours, ours, refused, stranger, theirs):
        response = client.post("/ingest", json=body, headers=tokens.auth("gateway"))
        assert response.status_code in (200, 201, 422), response.text
        results.append(response.json())
    assert [r["outcome"] for r in results] == ["created", "duplicate", "rejected", "rejected", "created"]
    with runtime.sessions() as session:
        keys = {k for k in session.scalars(select(m.Upload.patient_key)) if k}
    return {
        "uploads": [r["upload"] for r in results],
        "patient_ids": ids,
        "patient_keys": keys,
        "cprs": [p.cpr for p in PATIENTS],
    }


def _assert_no_identity(text: str, log: dict) -> None:
    for secret in [*log["cprs"], *log["patient_keys"], *log["patient_ids"]]:
        assert secret not in text
    assert "patient_key" not in text


def test_a_vendor_sees_its_own_devices_uploads_newest_first_and_no_identity(client, runtime, vendor, upload_log):
    response = client.get("/uploads", headers=vendor)
    assert response.status_code == 200, response.text
    body = response.json()
    ours = upload_log["uploads"][:4]
    assert body["total"] == 4
    assert [u["id"] for u in body["uploads"]] == list(reversed(ours))
    stranger, refused, duplicate, created = body["uploads"]
    assert created["outcome"] == "created" and created["counts"] == {
        "created": 2,
        "duplicates": 0,
        "rejected": 0,
    }  # BP and pulse
    assert duplicate["outcome"] == "duplicate" and duplicate["counts"]["duplicates"] == 2
    assert refused["outcome"] == "rejected" and refused["counts"]["rejected"] == 1
    assert "field 'measurement_status', byte offset 17" in refused["issues"]["issue"][0]["diagnostics"]
    assert "not enrolled" in stranger["issues"]["issue"][0]["diagnostics"]
    # no consent to product testing (not even enrolled): the payload is withheld, the outcome and issues are not
    assert stranger["redacted"] is None and "product testing" in stranger["withheld"]
    for upload in (refused, duplicate, created):
        assert set(upload) == {"id", "received_at", "adapter", "device", "outcome", "counts", "issues", "redacted"}
        assert upload["redacted"]["patient"] == {"system": "urn:oid:1.2.208.176.1.2", "value": "[redacted]"}
        assert upload["redacted"]["device"]["manufacturer"] == MAKER
        assert not {"serial", "address"} & set(
            upload["redacted"]["device"]
        )  # never a device serial beside a patient's reading
    assert "SYN-BPM-NEVER-STORED" not in response.text
    for upload in body["uploads"]:
        assert upload["adapter"] == "ble-blood-pressure"
        assert datetime.fromisoformat(upload["received_at"]).tzinfo is not None
        assert upload["issues"]["resourceType"] == "OperationOutcome"
    _assert_no_identity(response.text, upload_log)
    [event] = audit_events(runtime, "uploads")
    assert event.role == "vendor" and event.outcome == "permit" and event.patient_key is None
    assert "4 of 4 returned (devices of Syntetisk Medico)" in event.detail


def test_another_vendor_never_sees_them(client, runtime, upload_log):
    theirs = client.get("/uploads", headers=make_user(runtime, "vendor", "Anden Medico")).json()
    assert [u["id"] for u in theirs["uploads"]] == [upload_log["uploads"][4]]
    assert theirs["uploads"][0]["redacted"] is None  # that patient has not consented to product testing
    nobody = client.get("/uploads", headers=make_user(runtime, "vendor", "Syntetisk")).json()  # a prefix is not a match
    assert nobody["total"] == 0 and nobody["uploads"] == []


def test_uploads_are_paged(client, vendor, upload_log):
    newest_first = list(reversed(upload_log["uploads"][:4]))
    first = client.get("/uploads", params={"_count": 3}, headers=vendor).json()
    assert [u["id"] for u in first["uploads"]] == newest_first[:3]
    assert first["total"] == 4 and first["next"] == "/uploads?_count=3&_offset=3"
    rest = client.get(first["next"], headers=vendor).json()
    assert [u["id"] for u in rest["uploads"]] == newest_first[3:] and "next" not in rest
    assert client.get("/uploads", params={"_count": 0}, headers=vendor).json() == {
        "total": 4,
        "count": 0,
        "offset": 0,
        "uploads": [],
    }
    assert client.get("/uploads", params={"_count": 100000}, headers=vendor).json()["count"] == 500
    assert client.get("/uploads", params={"_count": -1}, headers=vendor).status_code == 400
    unknown = client.get("/uploads", params={"patient": "x"}, headers=vendor)
    assert unknown.status_code == 400 and "unknown parameter(s) patient" in unknown.text


def test_admin_sees_all_uploads_still_without_identity(client, tokens, upload_log):
    response = client.get("/uploads", headers=tokens.auth("admin"))
    assert response.status_code == 200
    assert [u["id"] for u in response.json()["uploads"]] == list(reversed(upload_log["uploads"]))
    _assert_no_identity(response.text, upload_log)


def test_uploads_roles(client, runtime, tokens, upload_log):
    for role in ("clinician", "gateway"):
        response = client.get("/uploads", headers=tokens.auth(role))
        assert response.status_code == 403 and response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/uploads").status_code == 401
    no_org = client.get("/uploads", headers=make_user(runtime, "vendor", None))
    assert no_org.status_code == 403 and "no organisation" in no_org.text
    assert audit_events(runtime, "uploads") == []
