"""``homediag adapters`` (``homediag/cli/adapters.py``): list the adapters, convert one payload."""

from __future__ import annotations

import re

import pytest
from cli_support import BP_FULL, check_bundle, issues, runner

from homediag.cli import app


def test_adapters_list_names_the_blood_pressure_adapter():
    result = runner.invoke(app, ["adapters", "list"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^ble-blood-pressure\s+.*0x2A35", result.stdout, re.M)


@pytest.mark.parametrize("source", ["hex", "file"])
def test_convert_prints_a_valid_collection_bundle(tmp_path, source):
    if source == "hex":
        args = ["--hex", BP_FULL]
    else:
        (tmp_path / "payload.bin").write_bytes(bytes.fromhex(BP_FULL))
        args = ["--file", str(tmp_path / "payload.bin")]
    result = runner.invoke(app, ["adapters", "convert", "ble-blood-pressure", *args])
    assert result.exit_code == 0, result.output
    bundle = check_bundle(result.stdout)
    bp = bundle.entry[0].resource
    assert [float(c.valueQuantity.value) for c in bp.component] == [138, 88, 120]


@pytest.mark.parametrize(
    ("adapter", "hex_payload", "says"),
    [
        ("ble-blood-pressure", BP_FULL[:-2], ["measurement_status", "byte offset 17"]),
        ("ble-blood-pressure", BP_FULL[:20], ["timestamp.day", "byte offset 10"]),
        ("ble-blood-pressure", "1e8a0zz", ["not valid hexadecimal"]),
        ("ble-glucose-meter", BP_FULL, ["no adapter 'ble-glucose-meter'", "ble-blood-pressure"]),
    ],
)
def test_convert_refuses_with_an_operation_outcome(adapter, hex_payload, says):
    result = runner.invoke(app, ["adapters", "convert", adapter, "--hex", hex_payload])
    assert result.exit_code != 0
    found = issues(result.stdout)
    assert found[0]["severity"] == "error"
    assert all(s in found[0]["diagnostics"] for s in says), found
