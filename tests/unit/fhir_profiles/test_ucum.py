"""UCUM codes: the measurements' own units answered without the grammar, and never wrongly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from homediag.fhir_profiles.ucum import is_valid_ucum, measurement_units, parses


@pytest.mark.parametrize("unit", sorted(measurement_units()))
def test_every_unit_of_the_measurements_is_valid_ucum_by_the_grammar(unit: str) -> None:
    assert parses(unit), f"measurements.toml names {unit!r}, which the UCUM grammar refuses"


@pytest.mark.parametrize(("code", "valid"), [("mm[Hg]", True), ("mmHg", False), ("mg/dL", True), ("Celsius", False)])
def test_codes_outside_the_measurements_still_go_through_the_grammar(code: str, valid: bool) -> None:
    assert is_valid_ucum(code) is valid


def test_checking_the_home_measurements_never_builds_the_grammar() -> None:
    """A server worker's first upload would otherwise wait about a second and keep 24 MB for the grammar."""
    script = textwrap.dedent(
        """
        from homediag.fhir_profiles import ucum
        from homediag.fhir_profiles.invariants import check_invariants

        for unit in sorted(ucum.measurement_units()):
            quantity = {"value": 1, "system": ucum.UCUM, "code": unit}
            issues = check_invariants({"resourceType": "Observation", "valueQuantity": quantity})
            assert not [i for i in issues if i.code == "code-invalid"], unit
        print(ucum._parser.cache_info().currsize)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"
