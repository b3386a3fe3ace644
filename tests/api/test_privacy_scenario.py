"""The whole-platform privacy check of issue 9, on SQLite and PostgreSQL: a seeded scenario (enrolment, consents,
Bluetooth, HL7 v2 and PHD uploads, refused uploads holding CPRs and names, every non-care reader's reads), then
a grep of the database (the SQLite file byte for byte; every table's rows on both engines), the logs and every
non-care response for the synthetic CPRs and names: they are found only in the vault's ciphertext."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import inspect, select, text

from homediag.ingest import open_upload
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import create_user

FIXTURES = Path(__file__).parents[1] / "fixtures"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
PATIENTS = synthetic_patients(3, seed=7331)  # synthetic CPRs only
NAMES = [("Qwertyson", "Zebulonia"), ("Xylofonsen", "Kvarkine"), ("Yxbergsen", "Plumbia")]  # synthetic names
MAKER = "Syntetisk Medico"
FHIR_JSON = {"content-type": "application/fhir+json"}


def _user(runtime, role: str, organisation: str) -> dict[str, str]:
    with runtime.sessions.begin() as session:
        _, token = create_user(session, name=f"scenario {role}", role=role, organisation=organisation)
    return {"Authorization": f"Bearer {token}"}


def _hl7(patient, family: str, given: str) -> dict:
    lines = (FIXTURES / "hl7v2" / "poc-crp.hl7").read_text().splitlines()
    cpr = patient.cpr
    lines[1] = f"PID|1||{cpr}^^^CPR^NNDNK||{family}^{given}||19700101|F|||Synthvej 1^^Nykøbing F."
    lines.insert(2, f"NK1|1|{family}^Relativa|SPO")
    lines[-1] = f"NTE|1||{given} {family} {cpr[:6]}-{cpr[6:]}"
    return {
        "adapter": "hl7v2-oru",
        "payload_base64": __import__("base64").b64encode("\r".join(lines).encode()).decode(),
        "device": {"manufacturer": MAKER, "model": "CRP-1", "serial": "SN-SYNTH-CRP-0001"},
        "patient": {"system": CPR_SYSTEM, "value": cpr},
        "received_at": "2026-11-26T10:40:00+01:00",
    }


def _phd(subject: dict, taken: datetime, note: str) -> dict:
    bundle = json.loads((FIXTURES / "phd-ig" / "bundle-example-1.json").read_text())
    resource = bundle["entry"][4]["resource"]
    for key in ("extension", "device", "id"):
        resource.pop(key)
    resource.update(
        subject=subject,
        effectiveDateTime=taken.isoformat(),
        note=[{"text": note}],
        performer=[{"reference": "Practitioner/nurse-home-visit-team-0001", "display": "Birthe Synthsen"}],
    )
    return resource


def test_cprs_and_names_are_found_only_in_the_vault(client, tokens, runtime, pilot, caplog):
    caplog.set_level(logging.DEBUG)
    now = datetime.now(UTC).replace(microsecond=0)
    ids = [pilot.enrol(p.cpr, family=f, given=g) for p, (f, g) in zip(PATIENTS[:2], NAMES[:2], strict=True)]
    for patient_id in ids:
        pilot.consent(patient_id, purposes=("TREAT", "HRESCH", "HTEST"))
    gateway = tokens.auth("gateway")
    first, second, stranger = PATIENTS
    sends = [
        client.post("/ingest", json=envelope(first, cuff_payload(random.Random(1), now), now), headers=gateway),
        client.post("/ingest", json=_hl7(second, *NAMES[1]), headers=gateway),
        # refused, and kept: an extra field with a CPR, a CPR in other digits, an unenrolled patient
        client.post("/ingest", json={**envelope(first, b"\x00", now), "patient_cpr": first.cpr}, headers=gateway),
        client.post("/ingest", json=envelope(stranger, cuff_payload(random.Random(2), now), now), headers=gateway),
        client.post(
            "/fhir/Observation",
            content=json.dumps(_phd({"reference": f"Patient/{ids[0]}"}, now - timedelta(hours=1), "measured twice")),
            headers={**gateway, **FHIR_JSON},
        ),
        client.post(
            "/fhir/Observation",
            content=json.dumps(
                _phd({"identifier": {"system": CPR_SYSTEM, "value": second.cpr}}, now, f"{second.cpr} said hello")
            ),
            headers={**gateway, **FHIR_JSON},
        ),
        client.post(
            "/fhir/Observation",
            content=json.dumps(_phd({"reference": f"Patient/{ids[1]}"}, now, f"{stranger.cpr} is the neighbour")),
            headers={**gateway, **FHIR_JSON},
        ),
    ]
    assert [s.status_code for s in sends] == [201, 201, 422, 422, 201, 422, 422], [s.text for s in sends]

    evaluator, vendor = _user(runtime, "evaluator", "FIERS"), _user(runtime, "vendor", MAKER)
    admin = tokens.auth("admin")
    responses = list(sends)
    for reader in (evaluator, vendor):
        found = client.get("/fhir/Observation", headers=reader)
        assert found.status_code == 200 and found.json()["total"] >= 1, found.text
        responses.append(found)
        for entry in found.json()["entry"]:
            responses.append(client.get(f"/fhir/Observation/{entry['resource']['id']}", headers=reader))
            subject = entry["resource"]["subject"]["reference"]
            responses.append(client.get(f"/fhir/{subject}", headers=reader))
    for reader in (evaluator, vendor, admin):
        responses += [client.get(f"/fhir/Patient/{p.cpr}", headers=reader) for p in PATIENTS]
    responses += [client.get("/uploads", headers=reader) for reader in (vendor, admin)]
    responses += [client.get(f"/fhir/Patient/{i}", headers=admin) for i in ids]
    responses.append(client.get("/fhir/AuditEvent?_count=500", headers=admin))
    assert not [r for r in responses if r.status_code >= 500]

    secrets_ = [s for p in PATIENTS for s in (p.cpr, f"{p.cpr[:6]}-{p.cpr[6:]}")] + [n for pair in NAMES for n in pair]
    leaks = {s: [r.request.url.path for r in responses if s in r.text] for s in secrets_}
    assert not {s: where for s, where in leaks.items() if where}
    server_log = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]  # httpx: the test's client
    assert not [line for line in server_log if any(s in line for s in secrets_)]

    dump: list[str] = []
    with runtime.engine.connect() as conn:
        for table in inspect(runtime.engine).get_table_names():
            dump += [repr(tuple(row)) for row in conn.execute(text(f"select * from {table}"))]
    assert not [s for s in secrets_ if any(s in row for row in dump)]
    url = runtime.settings.database_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        stored = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists())
        assert not [s for s in secrets_ if s.encode() in stored]

    # what was sent is not lost: the vault's sealed copies hold it
    with runtime.sessions() as session:
        sealed = b"".join(open_upload(runtime, u) for u in session.scalars(select(m.Upload)))
    assert all(s.encode() in sealed for s in (first.cpr, second.cpr, stranger.cpr))
