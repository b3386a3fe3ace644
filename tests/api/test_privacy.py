"""Privacy regressions of issue 9 through the real ASGI app, on SQLite and PostgreSQL: what leaves its owner
is an allow-list (the upload log's readable copy, HL7 v2 payloads, PHD Observations shown outside care),
a CPR is ten ASCII digits and is never echoed, and two pseudonym domains cannot be joined on exact times."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import create_user

FIXTURES = Path(__file__).parents[1] / "fixtures"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
PATIENTS = synthetic_patients(4, seed=909)  # synthetic CPRs and names only
MAKER = "Syntetisk Medico"  # synthetic.envelope()'s manufacturer
FHIR_JSON = {"content-type": "application/fhir+json"}
BP_PANEL = "http://loinc.org|85354-9"


def make_user(runtime, role: str, organisation: str | None) -> dict[str, str]:
    with runtime.sessions.begin() as session:
        _, token = create_user(session, name=f"test {role} {organisation}", role=role, organisation=organisation)
    return {"Authorization": f"Bearer {token}"}


def hyphenated(cpr: str) -> str:
    return f"{cpr[:6]}-{cpr[6:]}"


def cuff_envelope(patient, taken: datetime, seed: int = 1) -> dict:
    return envelope(patient, cuff_payload(random.Random(seed), taken), taken + timedelta(minutes=1))


def hl7_envelope(patient, *, family: str, given: str) -> dict:
    """The point-of-care CRP fixture with a PID, NK1, PV1 and NTE that name the patient and a relative."""
    lines = (FIXTURES / "hl7v2" / "poc-crp.hl7").read_text().splitlines()
    lines[1] = f"PID|1||{patient.cpr}^^^CPR^NNDNK~SYNTH-PID-0042^^^SYNTHHOSP^PI||{family}^{given}||19700101|F"
    lines.insert(2, f"NK1|1|{family}^Relativa|SPO|Synthvej 1^^Nykøbing F.||+4500000000")
    lines.insert(3, f"PV1|1|O|NFS^^^^^^^^{given} {family}|||||0000^Doktor^Synth")
    lines[-1] = f"NTE|1||called {given} {family} ({hyphenated(patient.cpr)}) about the result"
    return {
        "adapter": "hl7v2-oru",
        "payload_hex": "\r".join(lines).encode().hex(),
        "device": {"manufacturer": MAKER, "model": "CRP-1", "serial": "SN-SYNTH-CRP-0001"},
        "patient": {"system": CPR_SYSTEM, "value": patient.cpr},
        "gateway": {"id": "tablet-1"},
        "received_at": "2026-11-26T10:40:00+01:00",
    }


def phd_spo2(patient_id: str, taken: datetime) -> dict:
    """The PHD IG's numeric SpO2 Observation about ``Patient/{patient_id}``, with free text a gateway may add."""
    bundle = json.loads((FIXTURES / "phd-ig" / "bundle-example-1.json").read_text())
    resource = copy.deepcopy(bundle["entry"][4]["resource"])
    for key in ("extension", "device", "id"):
        resource.pop(key)
    resource["subject"] = {"reference": f"Patient/{patient_id}"}
    resource["effectiveDateTime"] = taken.isoformat()
    return resource


@pytest.fixture
def vendor(runtime) -> dict[str, str]:
    return make_user(runtime, "vendor", MAKER)


@pytest.fixture
def evaluator(runtime) -> dict[str, str]:
    return make_user(runtime, "evaluator", "FIERS")


# -- the upload log's readable copy is an allow-list ---------------------------------------------------
def test_an_extra_envelope_field_never_shows_its_value_in_the_upload_log(client, tokens, runtime, vendor):
    patient = PATIENTS[0]
    sent = {**cuff_envelope(patient, datetime.now(UTC) - timedelta(hours=1)), "patient_cpr": hyphenated(patient.cpr)}
    sent["device"] = {**sent["device"], "colour": patient.cpr}
    sent[patient.cpr] = "a CPR as a field name"
    response = client.post("/ingest", json=sent, headers=tokens.auth("gateway"))
    assert response.status_code == 422, response.text
    assert patient.cpr not in response.text and hyphenated(patient.cpr) not in response.text

    for reader in (vendor, tokens.auth("admin")):
        listed = client.get("/uploads", headers=reader)
        assert listed.status_code == 200, listed.text
        assert patient.cpr not in listed.text and hyphenated(patient.cpr) not in listed.text
        [upload] = listed.json()["uploads"]
        readable = upload["redacted"]
        assert readable["dropped"] == ["[a field name not shown]", "device.colour", "patient_cpr"]
        assert readable["device"]["serial"] == patient.cuff_serial  # refused before a patient was identified
        assert readable["patient"] == {"system": CPR_SYSTEM, "value": "[redacted]"}
    with runtime.sessions() as session:
        [stored] = session.scalars(select(m.Upload)).all()
        assert patient.cpr not in json.dumps(stored.redacted)
        assert patient.cpr not in json.dumps(stored.issues)


def test_an_hl7v2_payload_reaches_the_vendor_without_pid_nk1_pv1_or_notes(client, tokens, runtime, pilot, vendor):
    patient = PATIENTS[1]
    family, given = "Qwertyson", "Zebulonia"
    patient_id = pilot.enrol(patient.cpr, family=family, given=given)
    pilot.consent(patient_id, purposes=("TREAT", "HTEST"))
    response = client.post(
        "/ingest", json=hl7_envelope(patient, family=family, given=given), headers=tokens.auth("gateway")
    )
    assert response.status_code == 201, response.text

    for reader in (vendor, tokens.auth("admin")):
        listed = client.get("/uploads", headers=reader)
        assert listed.status_code == 200, listed.text
        [upload] = listed.json()["uploads"]
        message = bytes.fromhex(upload["redacted"]["payload_hex"]).decode()
        for secret in (patient.cpr, hyphenated(patient.cpr), family, given, "19700101", "Synthvej", "Doktor"):
            assert secret not in message and secret not in listed.text, secret
        segments = message.split("\r")
        assert [s[:3] for s in segments] == ["MSH", "PID", "NK1", "PV1", "OBR", "OBX", "NTE"]
        assert segments[1] == "PID|1" and segments[-1] == "NTE|1"
        assert "|42|mg/l^^UCUM|" in segments[5]  # the result itself is still there to debug the device
    # the clinician still sees the reading: care is unchanged
    found = client.get(f"/fhir/Observation?patient={patient_id}", headers=tokens.auth("clinician")).json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["valueQuantity"]["value"] == 42


# -- pseudonymous views are projections onto the profile ------------------------------------------------
def test_free_text_and_unmappable_references_never_reach_an_evaluator(client, tokens, runtime, pilot, evaluator):
    patient = PATIENTS[2]
    patient_id = pilot.enrol(patient.cpr)
    pilot.consent(patient_id, purposes=("TREAT", "HRESCH"))
    resource = phd_spo2(patient_id, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))
    resource["note"] = [{"text": "Nurse Birthe Synthsen measured twice"}]
    resource["performer"] = [
        {"reference": "Practitioner/nurse-home-visit-team-0001", "display": "Birthe Synthsen"},
        {"reference": "Organization/home-care-nfs", "display": "Hjemmeplejen Syd"},
    ]
    resource["text"] = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Birthe</div>'}
    resource["extension"] = [{"url": "https://vendor.example/private-id", "valueString": "Birthe"}]
    resource["hasMember"] = [{"reference": "Practitioner/nurse-home-visit-team-0001"}]
    resource["code"]["text"] = "Birthe's oximeter"
    created = client.post(
        "/fhir/Observation", content=json.dumps(resource), headers={**tokens.auth("gateway"), **FHIR_JSON}
    )
    assert created.status_code == 201, created.text

    searched = client.get(f"/fhir/Observation?patient={_pseudonym(client, evaluator, patient_id)}", headers=evaluator)
    assert searched.status_code == 200, searched.text
    assert "Birthe" not in searched.text and "Synthsen" not in searched.text and "Hjemmeplejen" not in searched.text
    assert "nurse-home-visit" not in searched.text and "Practitioner" not in searched.text
    [entry] = searched.json()["entry"]
    shown = entry["resource"]
    assert set(shown) <= {"resourceType", "id", "meta", "status", "category", "code", "subject"} | {
        "effectiveDateTime",
        "valueQuantity",
        "component",
    }
    assert shown["valueQuantity"] == resource["valueQuantity"]
    assert {(c["system"], c["code"]) for c in shown["code"]["coding"]} == {
        (c["system"], c["code"]) for c in resource["code"]["coding"]
    }
    read = client.get(f"/fhir/Observation/{shown['id']}", headers=evaluator)
    assert read.status_code == 200 and read.json() == shown

    # the clinician sees the Observation as the gateway sent it
    doc = client.get(f"/fhir/Observation?patient={patient_id}", headers=tokens.auth("clinician")).json()
    care = doc["entry"][0]["resource"]
    assert care["note"] == resource["note"] and care["performer"] == resource["performer"]
    assert care["effectiveDateTime"] == resource["effectiveDateTime"]


def test_a_phd_observation_whose_note_holds_a_cpr_is_refused_and_kept_redacted(client, tokens, runtime, pilot):
    patient, other = PATIENTS[2], PATIENTS[3]
    patient_id = pilot.enrol(patient.cpr)
    resource = phd_spo2(patient_id, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))
    resource["note"] = [{"text": f"neighbour {hyphenated(other.cpr)} helped"}]
    refused = client.post(
        "/fhir/Observation", content=json.dumps(resource), headers={**tokens.auth("gateway"), **FHIR_JSON}
    )
    assert refused.status_code == 422, refused.text
    assert other.cpr[:6] not in refused.text
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(m.Observation)) == 0
        [upload] = session.scalars(select(m.Upload)).all()
        assert upload.outcome == "rejected" and other.cpr[:6] not in json.dumps(upload.redacted)


def _pseudonym(client, reader, patient_id: str) -> str:
    """The reader's pseudonym of a patient, as its own search shows it (the one patient it may see)."""
    found = client.get("/fhir/Observation", headers=reader).json()
    refs = {e["resource"]["subject"]["reference"] for e in found.get("entry", [])}
    assert len(refs) == 1, refs
    return refs.pop().split("/")[1]


# -- CPR digit forms ------------------------------------------------------------------------------------
FORMS = {
    "arabic-indic": str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"),
    "fullwidth": str.maketrans("0123456789", "０１２３４５６７８９"),
    "devanagari": str.maketrans("0123456789", "०१२३४५६७८९"),
    "superscript": str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"),
}


@pytest.mark.parametrize("form", FORMS)
def test_a_cpr_in_other_digits_is_refused_without_echo(client, tokens, runtime, pilot, form):
    patient = PATIENTS[0]
    pilot.enrol(patient.cpr)
    written = patient.cpr.translate(FORMS[form])
    sent = {**cuff_envelope(patient, datetime.now(UTC) - timedelta(hours=1))}
    sent["patient"] = {"system": CPR_SYSTEM, "value": written}
    response = client.post("/ingest", json=sent, headers=tokens.auth("gateway"))
    assert response.status_code == 422, response.text
    assert "ASCII digits" in response.text and written not in response.text

    enrolment = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": CPR_SYSTEM, "value": written}]},
        headers=tokens.auth("admin"),
    )
    assert 400 <= enrolment.status_code < 500 and written not in enrolment.text
    read = client.get(f"/fhir/Patient/{written}", headers=tokens.auth("admin"))
    assert read.status_code == 404 and written not in read.text
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(m.Patient)) == 1  # no duplicate of one person
        audited = " ".join(f"{e.entity} {e.detail}" for e in session.scalars(select(m.AuditEvent)))
    assert written not in audited and patient.cpr not in audited


# -- linkage across domains -----------------------------------------------------------------------------
def test_two_evaluators_cannot_join_their_domains_on_exact_times(client, tokens, runtime, pilot):
    patient = PATIENTS[0]
    patient_id = pilot.enrol(patient.cpr)
    pilot.consent(patient_id, purposes=("TREAT", "HRESCH"))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    for i in range(3):
        taken = start + timedelta(hours=7 * i)
        sent = client.post("/ingest", json=cuff_envelope(patient, taken, seed=i), headers=tokens.auth("gateway"))
        assert sent.status_code == 201, sent.text
    readers = [make_user(runtime, "evaluator", org) for org in ("FIERS", "FIERS-2")]

    def times(reader) -> list[datetime]:
        found = client.get(f"/fhir/Observation?_sort=date&code={BP_PANEL}", headers=reader).json()
        return [datetime.fromisoformat(e["resource"]["effectiveDateTime"]) for e in found["entry"]]

    care = times(tokens.auth("clinician"))
    first, second = (times(r) for r in readers)
    assert len(care) == len(first) == len(second) == 3
    assert not set(first) & set(second) and not set(first) & set(care) and not set(second) & set(care)
    for seen in (first, second):  # the intervals within the patient are kept
        assert [b - a for a, b in zip(seen, seen[1:], strict=False)] == [timedelta(hours=7)] * 2
        assert abs(seen[0] - care[0]) <= timedelta(days=60)

    # a date search is in the reader's own (shifted) time
    for reader, seen in zip(readers, (first, second), strict=True):
        since = seen[1].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        found = client.get("/fhir/Observation", params={"date": f"ge{since}", "code": BP_PANEL}, headers=reader).json()
        assert found["total"] == 2
        assert sorted(datetime.fromisoformat(e["resource"]["effectiveDateTime"]) for e in found["entry"]) == seen[1:]


def test_a_cpr_typed_as_any_id_or_reason_is_never_echoed_or_audited(client, tokens, runtime, pilot, evaluator):
    patient = PATIENTS[1]
    patient_id = pilot.enrol(patient.cpr)
    pilot.consent(patient_id)
    cpr, written = patient.cpr, hyphenated(patient.cpr)
    doc = tokens.auth("clinician")
    answers = [
        client.get(f"/fhir/Observation/{cpr}", headers=doc),
        client.get(f"/fhir/Observation/{written}", headers=evaluator),
        client.get(f"/fhir/Device/{cpr}", headers=doc),
        client.get(f"/fhir/Patient/{written}", headers=evaluator),
    ]
    assert [a.status_code for a in answers] == [404] * 4
    assert not [a.text for a in answers if cpr in a.text or written in a.text]
    identified = client.get(
        f"/fhir/Patient/{patient_id}", headers={**doc, "X-Reidentification-Reason": f"call about {written}"}
    )
    assert identified.status_code == 200 and identified.json()["identifier"][0]["value"] == cpr  # care: as before
    with runtime.sessions() as session:
        audited = " ".join(f"{e.entity} {e.detail}" for e in session.scalars(select(m.AuditEvent)))
    assert cpr not in audited and written not in audited and "[CPR-like]" in audited


def test_a_shifted_date_search_over_thousands_of_patients_is_one_expression(runtime):
    """A shifted reader's date bounds are chosen per patient by one CASE: 3,000 patients stay within
    SQLite's expression depth (a chain of ORs would not)."""
    from homediag.access.observations import date_mover, search_filters
    from homediag.access.view import View, Window
    from homediag.domains import domain_for
    from homediag.search_params import parse_observation_query
    from homediag.users import Principal

    keys = [f"key-{i:05d}" for i in range(3000)]
    with runtime.sessions.begin() as session:
        session.add_all(
            m.Patient(id=f"p{i:05d}", patient_key=k, pilot="t", enrolled_at=datetime(2026, 1, 1), enrolled_by="t")
            for i, k in enumerate(keys)
        )
    view = View(Principal("e", "e", "evaluator", "FIERS"), "HRESCH", domain_for(runtime.keys, "evaluator:FIERS"))
    items = [("date", "ge2026-01-01"), ("date", "lt2026-12-01")]
    query = parse_observation_query(items, ZoneInfo("Europe/Copenhagen"), 50, 500)
    with runtime.sessions() as session:
        moved = date_mover(session, view, dict.fromkeys(keys, Window(((None, None),))))
        assert moved is not None
        clauses = search_filters(query, [], moved)
        assert session.scalar(select(func.count()).select_from(m.Observation).where(*clauses)) == 0
