"""What the evaluation tests share (imported by name: ``tests/evaluation`` is on ``sys.path`` under pytest): a small
research pilot (the demo plus research consents; ``homediag.evaluation.pilot``), built once, its evaluator and its
export, as fixtures the test modules import; and ``all_bytes`` to grep the outputs. (Not a ``conftest.py``: that
name would shadow ``tests/conftest.py`` for the modules that import from it.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from homediag.access import AccessService
from homediag.evaluation.export import ExportResult, export
from homediag.evaluation.pilot import ResearchPilot, build_research_pilot
from homediag.users import Principal


@pytest.fixture(scope="session", name="research_pilot")
def research_pilot_fixture(tmp_path_factory: pytest.TempPathFactory) -> ResearchPilot:
    return build_research_pilot(tmp_path_factory.mktemp("pilot") / "demo", patients=16, days=15, seed=7)


@pytest.fixture(scope="session", name="evaluator")
def evaluator_fixture(research_pilot: ResearchPilot) -> Principal:
    from homediag.evaluation.pilot import EVALUATOR_ORGANISATION

    return Principal(research_pilot.evaluator_id, "FIERS evaluator (synthetic)", "evaluator", EVALUATOR_ORGANISATION)


@pytest.fixture(scope="session", name="exported")
def exported_fixture(
    research_pilot: ResearchPilot, evaluator: Principal, tmp_path_factory: pytest.TempPathFactory
) -> ExportResult:
    out = tmp_path_factory.mktemp("export") / "parquet"
    return export(AccessService(research_pilot.runtime), evaluator, out, part_patients=4)


def all_bytes(directory: Path) -> bytes:
    """Every file under ``directory``, concatenated: to grep the outputs for identities."""
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())
