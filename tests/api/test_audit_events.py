"""Admins read the audit log as FHIR AuditEvent resources."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fhir.resources.R4B.bundle import Bundle

from homediag.synthetic import cuff_payload, envelope, synthetic_patients


def test_admin_reads_the_audit_log_as_audit_events(client, tokens, pilot) -> None:  # type: ignore[no-untyped-def]
    person = synthetic_patients(1, seed=31)[0]
    pid = pilot.enrol(person.cpr)
    pilot.consent(pid)
    taken = datetime.now(ZoneInfo("Europe/Copenhagen")).replace(microsecond=0) - timedelta(hours=1)
    client.post(
        "/ingest",
        json=envelope(person, cuff_payload(random.Random(1), taken.replace(tzinfo=None)), taken),
        headers=tokens.auth("gateway"),
    )
    client.get(
        f"/fhir/Patient/{pid}",
        headers={**tokens.auth("clinician"), "X-Reidentification-Reason": "telephone consultation"},
    )
    client.get("/fhir/Observation", params={"patient": pid}, headers=tokens.auth("clinician"))

    response = client.get("/fhir/AuditEvent", params={"patient": pid}, headers=tokens.auth("admin"))
    assert response.status_code == 200
    bundle = response.json()
    Bundle.model_validate(bundle)
    kinds = [e["resource"]["type"]["code"] for e in bundle["entry"]]
    assert kinds[:2] == ["search", "re-identify"]  # newest first
    assert {"enrol", "consent-create", "ingest"} <= set(kinds)
    reid = bundle["entry"][1]["resource"]
    assert reid["agent"][0]["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert reid["entity"][0]["what"]["reference"] == f"Patient/{pid}"
    assert "telephone consultation" in reid["outcomeDesc"]
    assert person.cpr not in response.text

    only = client.get("/fhir/AuditEvent", params={"type": "re-identify"}, headers=tokens.auth("admin")).json()
    assert only["total"] == 1
    paged = client.get("/fhir/AuditEvent", params={"_count": "2"}, headers=tokens.auth("admin")).json()
    assert len(paged["entry"]) == 2 and paged["link"][0]["relation"] == "next"


def test_only_admins_read_the_audit_log(client, tokens) -> None:  # type: ignore[no-untyped-def]
    for role in ("clinician", "gateway"):
        assert client.get("/fhir/AuditEvent", headers=tokens.auth(role)).status_code == 403
    assert client.get("/fhir/AuditEvent", params={"bogus": "1"}, headers=tokens.auth("admin")).status_code == 400
