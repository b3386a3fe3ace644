"""The layout promises of docs/architecture.md."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE = ("adapters", "fhir_profiles", "consent")
# what a pure component may import besides the standard library
ALLOWED_THIRD_PARTY = {
    "pydantic",
    "fhir",
    "simplejson",
    "orjson",  # fhirjson: its fast path, checked against simplejson
    "ucumvert",
    "hl7",
}  # hl7 (python-hl7): the HL7 v2 parser of the hl7v2-oru adapter
ALLOWED_HOMEDIAG = ("homediag.adapters", "homediag.fhir_profiles", "homediag.consent")


def test_import_platform_from_the_repository_root_is_the_standard_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.system(), platform.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    system, path = out.split()
    assert system and not path.startswith(str(ROOT))
    assert not (ROOT / "platform" / "__init__.py").exists()


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("component", PURE)
def test_pure_components_import_no_service_database_or_web_framework(component: str) -> None:
    stdlib = set(sys.stdlib_module_names)
    offending = []
    for path in sorted((ROOT / component).rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "homediag":
                if not name.startswith(ALLOWED_HOMEDIAG):
                    offending.append(f"{path.relative_to(ROOT)}: {name}")
            elif top not in stdlib and top not in ALLOWED_THIRD_PARTY:
                offending.append(f"{path.relative_to(ROOT)}: {name}")
    assert offending == []
