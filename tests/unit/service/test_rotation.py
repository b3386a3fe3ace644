"""Key rotation: the vault is re-encrypted and patients move to new patient keys without losing anything."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from homediag import audit
from homediag.keys import KeyError_, KeyRing, load_keys, write_key_file
from homediag.rotation import rotate
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.users import Principal

ADMIN = Principal("admin-test", "test admin", "admin", None)


@pytest.fixture
def key_file(runtime: Runtime, tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    write_key_file(path, runtime.keys)
    return path


def _send(client, tokens, person, when: datetime) -> dict:  # type: ignore[no-untyped-def]
    sent = client.post(
        "/ingest",
        json=envelope(person, cuff_payload(random.Random(when.hour), when.replace(tzinfo=None)), when),
        headers=tokens.auth("gateway"),
    )
    assert sent.status_code in (200, 201), sent.text
    return dict(sent.json())


def test_rotating_both_keys_keeps_every_patient_and_reading(
    runtime: Runtime, client, tokens, pilot, key_file: Path
) -> None:  # type: ignore[no-untyped-def]
    people = synthetic_patients(2, seed=11)
    ids = [pilot.enrol(p.cpr, family=p.family) for p in people]
    for pid in ids:
        pilot.consent(pid)
    taken = datetime.now(ZoneInfo("Europe/Copenhagen")).replace(microsecond=0) - timedelta(hours=3)
    first = _send(client, tokens, people[0], taken)
    _send(client, tokens, people[1], taken)
    doc = tokens.auth("clinician")
    before = {pid: client.get("/fhir/Observation", params={"patient": pid}, headers=doc).json()["total"] for pid in ids}
    with runtime.sessions() as session:
        old_keys = set(session.execute(select(m.Patient.patient_key)).scalars())
    old_vault = runtime.keys.vault.kid

    report = rotate(runtime, ADMIN, key_file, vault=True, pseudonym=True)

    assert (report.patients, report.identities) == (2, 2)
    on_disk = load_keys(runtime.settings.model_copy(update={"keys_json": None, "key_file": key_file}))
    assert on_disk == runtime.keys and on_disk.vault.kid != old_vault
    assert old_vault in [k.kid for k in on_disk.vault_previous]
    with runtime.sessions() as session:
        new_keys = set(session.execute(select(m.Patient.patient_key)).scalars())
        assert not new_keys & old_keys
        for table in (m.Identity, m.Consent, m.Observation, m.ObservationDedup, m.Upload):
            assert not set(session.execute(select(table.patient_key)).scalars()) & old_keys, table.__tablename__
        assert {u.kid for u in session.execute(select(m.Upload)).scalars()} == {runtime.keys.vault.kid}
        assert audit.verify(session, runtime.keys).ok
        linked = (
            session.execute(select(m.AuditEvent.patient_key).where(m.AuditEvent.action == "pseudonym-rotated"))
            .scalars()
            .all()
        )
        assert set(linked) == old_keys

    # same ids, same readings, same identity; consents still apply
    assert {
        pid: client.get("/fhir/Observation", params={"patient": pid}, headers=doc).json()["total"] for pid in ids
    } == before
    patient = client.get(f"/fhir/Patient/{ids[0]}", headers={**doc, "X-Reidentification-Reason": "test"}).json()
    assert patient["identifier"][0]["value"] == people[0].cpr
    # the gateway goes on as before: a re-sent reading is still a duplicate, a new one lands on the same patient
    again = _send(client, tokens, people[0], taken)
    assert again["outcome"] == "duplicate" and [o["id"] for o in again["observations"]] == [
        o["id"] for o in first["observations"]
    ]
    assert _send(client, tokens, people[0], taken + timedelta(hours=1))["outcome"] == "created"
    assert client.get("/fhir/Observation", params={"patient": ids[0]}, headers=doc).json()["total"] > before[ids[0]]


def test_a_failed_rotation_changes_nothing(runtime: Runtime, client, tokens, pilot, key_file: Path) -> None:  # type: ignore[no-untyped-def]
    person = synthetic_patients(1, seed=12)[0]
    pilot.enrol(person.cpr)
    original = key_file.read_text()
    with runtime.sessions() as session:
        before = session.execute(select(m.Patient.patient_key)).scalar_one()
    broken_keys = KeyRing.generate()  # a runtime whose keys cannot open the vault
    stranger = Runtime(runtime.settings, broken_keys, runtime.engine, runtime.sessions)
    with pytest.raises(KeyError_, match="no vault key"):
        rotate(stranger, ADMIN, key_file, vault=True, pseudonym=True)
    assert key_file.read_text() == original
    assert not key_file.with_name("keys.json.new").exists()
    with runtime.sessions() as session:
        assert session.execute(select(m.Patient.patient_key)).scalar_one() == before
    assert json.loads(original)["vault"]["kid"] == runtime.keys.vault.kid
