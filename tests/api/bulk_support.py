"""Shared set-up of the Bulk Data export tests: an export directory per test, evaluators, a consent matrix."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from homediag.access import AccessService
from homediag.consent import treatment_consent
from homediag.runtime import Runtime
from homediag.synthetic import SyntheticPatient, cuff_payload, envelope, synthetic_patients
from homediag.users import Principal, create_user

CPH = ZoneInfo("Europe/Copenhagen")
# the local times readings are taken at: two in the morning, two in the afternoon of 1 March 2026
TAKEN = [datetime(2026, 3, 1, h, 0) for h in (8, 10, 14, 16)]
# the dataPeriod of patient "period": the morning only
MORNING = {"start": "2026-03-01T00:00:00+01:00", "end": "2026-03-01T12:00:00+01:00"}


def use_export_dir(runtime: Runtime, root: Path, **settings: Any) -> Path:
    """Point the runtime's exports at ``root`` (small files, no waiting between polls)."""
    update = {"export_dir": root, "export_file_resources": 3, "export_retry_after_seconds": 0, **settings}
    runtime.settings = runtime.settings.model_copy(update=update)
    return root


@dataclass
class Evaluator:
    token: str
    principal: Principal
    runtime: Runtime

    def pseudonym(self, kind: str, real_id: str) -> str:
        view = AccessService(self.runtime).view(self.principal)
        return view.shown_id(kind, real_id)

    def offset(self, patient_id: str) -> timedelta:
        """What this evaluator's times of the patient are shifted by (never zero outside care)."""
        return AccessService(self.runtime).view(self.principal).offset(patient_id)


def make_user(runtime: Runtime, role: str, organisation: str | None) -> tuple[str, Principal]:
    with runtime.sessions.begin() as session:
        user, token = create_user(session, name=f"bulk {role}", role=role, organisation=organisation)
        return token, Principal(user.id, user.name, user.role, user.organisation)


def make_evaluator(runtime: Runtime, organisation: str = "FIERS") -> Evaluator:
    token, principal = make_user(runtime, "evaluator", organisation)
    return Evaluator(token, principal, runtime)


def ingest(client: Any, tokens: Any, person: SyntheticPatient, times: list[datetime]) -> list[str]:
    rng = random.Random(person.cpr)
    ids = []
    for taken in times:
        body = envelope(person, cuff_payload(rng, taken), datetime.now(UTC))
        response = client.post("/ingest", json=body, headers=tokens.auth("gateway"))
        assert response.status_code == 201, response.text
        ids += [o["id"] for o in response.json()["observations"]]
    return ids


@dataclass
class Matrix:
    """Five synthetic patients, four readings each (eight Observations), and their consents:
    ``research`` HRESCH for data of any time; ``treatment`` TREAT only; ``withdrawn`` HRESCH, withdrawn;
    ``period`` HRESCH for the morning's data only; ``none`` no consent at all."""

    people: dict[str, SyntheticPatient]
    ids: dict[str, str]  # name -> platform Patient id
    observations: dict[str, list[str]]  # name -> platform Observation ids (in reading order)
    consents: dict[str, dict[str, Any]] = field(default_factory=dict)


NAMES = ("research", "treatment", "withdrawn", "period", "none")


def consent_matrix(client: Any, tokens: Any, pilot: Any) -> Matrix:
    people = dict(zip(NAMES, synthetic_patients(len(NAMES), seed=13), strict=True))
    ids = {name: pilot.enrol(p.cpr, family=p.family, given=p.given) for name, p in people.items()}
    observations = {name: ingest(client, tokens, p, TAKEN) for name, p in people.items()}
    matrix = Matrix(people, ids, observations)
    matrix.consents["research"] = pilot.consent(ids["research"], purposes=("HRESCH",))
    matrix.consents["treatment"] = pilot.consent(ids["treatment"], purposes=("TREAT",))
    matrix.consents["withdrawn"] = pilot.withdraw(pilot.consent(ids["withdrawn"], purposes=("HRESCH",)))
    periodic = treatment_consent(f"Patient/{ids['period']}", purposes=("HRESCH",), scope="research")
    periodic["provision"]["dataPeriod"] = MORNING
    response = client.post("/fhir/Consent", json=periodic, headers=tokens.auth("admin"))
    assert response.status_code == 201, response.text
    matrix.consents["period"] = response.json()
    return matrix


# -- fixtures the Bulk Data test modules share (imported by name into each) ----------------------------------
@pytest.fixture
def exports(runtime: Runtime, tmp_path: Path) -> Path:
    return use_export_dir(runtime, tmp_path / "exports")


@pytest.fixture
def evaluator(runtime: Runtime) -> Evaluator:
    return make_evaluator(runtime)


@pytest.fixture
def matrix(client: Any, tokens: Any, pilot: Any) -> Matrix:
    return consent_matrix(client, tokens, pilot)
