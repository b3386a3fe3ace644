"""Shared set-up of the web app's tests: a pilot with a clinician's care team, patients with and without
consent, outside the team, readings sent through POST /ingest, and a refused upload."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from homediag import care
from homediag.runtime import Runtime
from homediag.synthetic import cuff_payload, envelope, synthetic_patients
from homediag.web.sessions import issue_signin_link

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
ADMIN_ACTOR = care.Principal("test-admin", "test admin", "admin", None)


@dataclass
class WebPilot:
    shown: dict[str, str] = field(default_factory=dict)  # patient id -> name: consented, on my team
    hidden: dict[str, str] = field(default_factory=dict)  # patient id -> name: no consent, withdrawn, other team
    readings: dict[str, int] = field(default_factory=dict)  # patient id -> blood-pressure readings sent
    refused_for: str = ""  # a shown patient with a refused upload


def build_pilot(pilot, runtime: Runtime, days: int = 10) -> WebPilot:  # type: ignore[no-untyped-def]
    """Five patients: two consented on the clinician's team, one without consent, one withdrawn, one
    consented but on another team. Two cuff readings a day for the consented ones."""
    people = synthetic_patients(5, seed=12)
    out = WebPilot()
    with runtime.sessions.begin() as session:
        other = care.create_team(session, runtime.keys, ADMIN_ACTOR, "Andet team", runtime.settings.pilot)
        other_id = other.id
    ids = []
    for n, person in enumerate(people):
        name = f"{person.given} {person.family}"
        if n == 4:  # another team's patient: enrolled on the gateway, not on my team
            response = pilot.client.post(
                "/fhir/Patient",
                json={
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": person.cpr}],
                    "name": [{"family": person.family, "given": [person.given]}],
                },
                headers=pilot.tokens.auth("admin"),
            )
            pid = response.json()["id"]
            pilot.admit(pid, team=other_id, gateway=pilot.tokens.ids["gateway"])
        else:
            pid = pilot.enrol(person.cpr, family=person.family, given=person.given)
        ids.append(pid)
        start = (datetime.now(COPENHAGEN) - timedelta(days=days + 5)).date()
        if n in (0, 1, 4):
            pilot.consent(pid, start=start)
        elif n == 3:
            pilot.withdraw(pilot.consent(pid, start=start))
        (out.shown if n in (0, 1) else out.hidden)[pid] = name
    rng = random.Random(12)
    now = datetime.now(COPENHAGEN).replace(second=0, microsecond=0)
    envelopes = []
    for pid, person in zip(ids, people, strict=True):
        count = 0
        for day in range(days, 0, -1):
            for hour in (7, 19):
                taken = (now - timedelta(days=day)).replace(hour=hour, minute=rng.randint(0, 50))
                payload = cuff_payload(rng, taken.replace(tzinfo=None), irregular=day == 3 and hour == 7)
                envelopes.append(envelope(person, payload, taken + timedelta(minutes=2)))
                count += 1
        out.readings[pid] = count
    envelopes.append(envelope(people[0], bytes.fromhex("1E8A005800"), now))  # truncated: refused, kept
    out.refused_for = ids[0]
    response = pilot.client.post("/ingest", json=envelopes, headers=pilot.tokens.auth("gateway"))
    assert response.status_code == 200, response.text
    return out


def sign_in(client: TestClient, runtime: Runtime, user_id: str) -> None:
    """Sign ``client`` in through a one-time link (as the demo's)."""
    response = client.get(issue_signin_link(runtime, user_id), follow_redirects=False)
    assert response.status_code == 303, response.text
    assert "hd_session" in client.cookies


# -- fixtures: imported by the web test modules (a conftest.py here would shadow tests/conftest.py, which
# other test modules import as ``conftest``)


@pytest.fixture
def web(client: TestClient, runtime: Runtime) -> TestClient:
    """The app's client over plain http: cookies without the Secure flag (a test checks the flag is set by
    default)."""
    runtime.settings.web_secure_cookies = False
    return client


@pytest.fixture
def web_pilot(web: TestClient, pilot, runtime: Runtime) -> WebPilot:  # type: ignore[no-untyped-def]
    return build_pilot(pilot, runtime)
