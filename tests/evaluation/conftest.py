"""A small research pilot (the demo plus research consents; ``homediag.evaluation.pilot``), built once for the
evaluation tests, and its evaluator's export."""

from __future__ import annotations

import pytest

from homediag.access import AccessService
from homediag.evaluation.export import ExportResult, export
from homediag.evaluation.pilot import ResearchPilot, build_research_pilot
from homediag.users import Principal


@pytest.fixture(scope="session")
def research_pilot(tmp_path_factory: pytest.TempPathFactory) -> ResearchPilot:
    return build_research_pilot(tmp_path_factory.mktemp("pilot") / "demo", patients=16, days=15, seed=7)


@pytest.fixture(scope="session")
def evaluator(research_pilot: ResearchPilot) -> Principal:
    from homediag.evaluation.pilot import EVALUATOR_ORGANISATION

    return Principal(research_pilot.evaluator_id, "FIERS evaluator (synthetic)", "evaluator", EVALUATOR_ORGANISATION)


@pytest.fixture(scope="session")
def exported(
    research_pilot: ResearchPilot, evaluator: Principal, tmp_path_factory: pytest.TempPathFactory
) -> ExportResult:
    out = tmp_path_factory.mktemp("export") / "parquet"
    return export(AccessService(research_pilot.runtime), evaluator, out, part_patients=4)
