"""``homediag demo``: a fresh demo pilot on SQLite, built through the real API.

Patients are enrolled and consents recorded with ``POST /fhir/Patient`` and ``/fhir/Consent``;
thirty days of cuff readings are made as real 0x2A35 payload bytes and sent through
``POST /ingest``, exactly as a gateway would. All of it is synthetic.
"""

from __future__ import annotations

import random
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

with warnings.catch_warnings():
    # starlette's in-process client warns about its httpx dependency; it is the supported way to
    # drive an ASGI app synchronously, and the demo only uses it to talk to its own app
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from homediag.consent import treatment_consent

from . import care
from .api.app import create_app
from .identity import CPR_SYSTEM
from .keys import KeyRing, write_key_file
from .runtime import Runtime
from .settings import Settings
from .store.database import upgrade
from .synthetic import cuff_payload, envelope, synthetic_patients
from .users import Principal, create_user
from .web.sessions import LINK_MINUTES, issue_signin_link

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
DEMO_ADMIN = Principal("demo-setup", "homediag demo", "admin", None)
BATCH = 100


@dataclass
class DemoPilot:
    database: str
    key_file: Path
    tokens: dict[str, str]
    patients: list[dict[str, Any]] = field(default_factory=list)
    uploads: dict[str, int] = field(default_factory=dict)
    runtime: Runtime | None = None
    web: dict[str, str] = field(default_factory=dict)  # role -> one-time sign-in link (path) of the web app
    web_users: dict[str, str] = field(default_factory=dict)  # role -> the user id a new link is made for

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "key_file": str(self.key_file),
            "tokens": self.tokens,
            "patients": self.patients,
            "uploads": self.uploads,
            "web": self.web,
        }


def _consent_plan(count: int) -> list[str]:
    """Most patients consent; a few do not; one withdraws; the rest active."""
    plan = ["active"] * count
    for i in range(3, count, 7):
        plan[i] = "none"
    if count > 5:
        plan[5] = "withdrawn"
    return plan


def build_demo(
    directory: Path, *, patients: int = 20, days: int = 30, seed: int = 2026, research: bool = True
) -> DemoPilot:
    """The demo pilot in ``directory``. ``research``: two in three consenting patients also consent to
    evaluation (HRESCH); without it only treatment consents are recorded (the evaluation example adds its own
    research consents in a fixed plan)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    key_file = directory / "homediag-keys.json"
    write_key_file(key_file, KeyRing.generate())
    database = f"sqlite:///{(directory / 'homediag.sqlite3').resolve()}"
    upgrade(database)
    settings = Settings(database_url=database, key_file=key_file, web_secure_cookies=False, _env_file=None)  # type: ignore[call-arg]
    runtime = Runtime.from_settings(settings)
    with runtime.sessions.begin() as session:
        users = {
            role: create_user(session, name=name, role=role, organisation=org)
            for role, name, org in (
                ("clinician", "Dr. Demo Klinikersen (synthetic)", "Nykøbing F. Sygehus"),
                ("admin", "Pilot administrator (synthetic)", "Nykøbing F. Sygehus"),
                ("gateway", "tablet-demo-01", "Nykøbing F. Sygehus"),
                ("evaluator", "FIERS evaluator (synthetic)", "FIERS"),
            )
        }
        team = care.create_team(
            session, runtime.keys, DEMO_ADMIN, "Hjemmemonitorering, Medicinsk afdeling (demo)", runtime.settings.pilot
        )
        care.add_member(session, runtime.keys, DEMO_ADMIN, team.id, users["clinician"][0].id)
    tokens = {role: token for role, (_, token) in users.items()}
    pilot = DemoPilot(database, key_file, tokens, runtime=runtime)
    people = synthetic_patients(patients, seed)
    rng = random.Random(seed)
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    gateway = {"Authorization": f"Bearer {tokens['gateway']}"}
    with TestClient(create_app(runtime)) as client:
        for n, (person, plan) in enumerate(zip(people, _consent_plan(patients), strict=True)):
            enrolled = client.post(
                "/fhir/Patient",
                headers=admin,
                json={
                    "resourceType": "Patient",
                    "identifier": [{"system": CPR_SYSTEM, "value": person.cpr}],
                    "name": [{"family": person.family, "given": [person.given]}],
                },
            )
            enrolled.raise_for_status()
            patient_id = enrolled.json()["id"]
            with runtime.sessions.begin() as session:  # in the demo team's care, measuring through the demo tablet
                care.admit(session, runtime.keys, DEMO_ADMIN, patient_id, team=team.id, gateway=users["gateway"][0].id)
                care.allow_device(session, runtime.keys, DEMO_ADMIN, users["gateway"][0].id, person.cuff_serial)
            if plan != "none":
                start = (datetime.now(COPENHAGEN) - timedelta(days=days + 1)).date()
                # two in three also consent to evaluation (research use): those FIERS sees, under its pseudonyms
                purposes = ("TREAT", "HRESCH") if research and n % 3 != 2 else ("TREAT",)
                consent = treatment_consent(f"Patient/{patient_id}", purposes=purposes, start=start)
                made = client.post("/fhir/Consent", headers=admin, json=consent)
                made.raise_for_status()
                if plan == "withdrawn":
                    client.put(
                        f"/fhir/Consent/{made.json()['id']}", headers=admin, json={**made.json(), "status": "inactive"}
                    ).raise_for_status()
            pilot.patients.append(
                {
                    "id": patient_id,
                    "consent": plan,
                    "research": research and plan == "active" and n % 3 != 2,
                    "name": f"{person.given} {person.family}",
                }
            )

        envelopes = []
        today = datetime.now(COPENHAGEN).replace(second=0, microsecond=0)
        for n, person in enumerate(people):
            hypertensive = n % 4 == 1
            for day in range(days, 0, -1):
                for hour in (7, 20):
                    taken = (today - timedelta(days=day)).replace(hour=hour, minute=rng.randint(0, 50))
                    payload = cuff_payload(
                        rng, taken.replace(tzinfo=None), hypertensive=hypertensive, irregular=rng.random() < 0.03
                    )
                    envelopes.append(envelope(person, payload, taken + timedelta(minutes=2)))
        # one cuff that sends a truncated notification: refused, and kept in the upload log
        broken = envelope(people[0], bytes.fromhex("1E8A005800"), today)
        envelopes.append(broken)
        counts: dict[str, int] = {}
        for i in range(0, len(envelopes), BATCH):
            response = client.post("/ingest", headers=gateway, json=envelopes[i : i + BATCH])
            response.raise_for_status()
            for result in response.json()["results"]:
                counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
        pilot.uploads = counts
    pilot.web_users = {role: users[role][0].id for role in ("clinician", "admin")}
    pilot.web = {role: issue_signin_link(runtime, user_id) for role, user_id in pilot.web_users.items()}
    return pilot


def print_summary(pilot: DemoPilot, url: str) -> None:
    consented = sum(1 for p in pilot.patients if p["consent"] == "active")
    settings = f"HOMEDIAG_DATABASE_URL='{pilot.database}' HOMEDIAG_KEY_FILE='{pilot.key_file}'"
    lines = [
        "homediag demo pilot (all data synthetic)",
        f"  database   {pilot.database}",
        f"  key file   {pilot.key_file}",
        f"  patients   {len(pilot.patients)} enrolled, {consented} with an active treatment consent,"
        f" {sum(1 for p in pilot.patients if p['research'])} of them also for evaluation (FIERS)",
        f"  uploads    {', '.join(f'{v} {k}' for k, v in sorted(pilot.uploads.items()))}",
        "",
        f"  API        {url}/fhir/metadata",
        f"  API docs   {url}/docs",
        f"  web app    {url}/app/  (one-time sign-in links, valid {LINK_MINUTES} minutes:)",
        *(f"    {role:10} {url}{path}" for role, path in pilot.web.items()),
        "",
        "  tokens (Authorization: Bearer <token>)",
        *(f"    {role:10} {token}" for role, token in pilot.tokens.items()),
        "",
        "  try:",
        f"    curl -H 'Authorization: Bearer {pilot.tokens['clinician']}'"
        f" '{url}/fhir/Observation?code=http://loinc.org|85354-9&_count=5'",
        f"    curl -H 'Authorization: Bearer {pilot.tokens['evaluator']}' -H 'Prefer: respond-async'"
        f" '{url}/fhir/$export'   # FIERS: a Bulk Data export under its pseudonyms",
        "",
        f"  serve this database again later: {settings} HOMEDIAG_WEB_SECURE_COOKIES=false homediag serve",
        f"  a new sign-in link (these are used up once opened): {settings} homediag users signin-link"
        f" {pilot.web_users.get('clinician', '<user id>')} --base-url {url}",
    ]
    print("\n".join(lines), flush=True)


def serve_demo(pilot: DemoPilot, host: str, port: int) -> None:
    from .server import serve

    assert pilot.runtime is not None
    serve(create_app(pilot.runtime), host, port)
