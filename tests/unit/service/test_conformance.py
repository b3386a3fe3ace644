"""The conformance kit (``homediag adapters test ADAPTER CASES_DIR``) on the built-in blood-pressure
adapter's cases in tests/fixtures/conformance/ble-blood-pressure (from the third-party vectors):
all pass; a wrong expectation fails with a readable diff; refusals; missing expected files; --update."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from homediag.adapters.devices import DecodeError, Measured, Number, Reading
from homediag.adapters.devices.blood_pressure import BleBloodPressureAdapter
from homediag.cli import app
from homediag.conformance import EXAMPLE_RECEIVED_AT, Case, find_cases, run_case, try_payload
from homediag.fhir_profiles import fhirjson, validate

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
BP_CASES = FIXTURES / "conformance" / "ble-blood-pressure"
VECTORS = {
    v["id"]: v for v in json.loads((FIXTURES / "ble" / "third-party-vectors.json").read_text())["characteristics"]
}
runner = CliRunner()


def kit(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["adapters", "test", *args])


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    """A copy of the blood-pressure cases to break."""
    target = tmp_path / "cases"
    shutil.copytree(BP_CASES, target)
    return target


def _hex(path: Path) -> str:
    return "".join(line.split("#", 1)[0] for line in path.read_text().splitlines()).replace(" ", "").upper()


def test_the_blood_pressure_cases_come_from_the_third_party_vectors_and_hold_their_published_values():
    assert _hex(BP_CASES / "nordic-bp-full.hex") == VECTORS["nordic-bp-full"]["hex"]
    assert _hex(BP_CASES / "nordic-bp-kpa.hex") == VECTORS["nordic-bp-kpa"]["hex"]
    assert (BP_CASES / "nordic-bp-kpa-bytes.bin").read_bytes() == bytes.fromhex(VECTORS["nordic-bp-kpa"]["hex"])
    full = json.loads((BP_CASES / "nordic-bp-full.expected.json").read_text())
    bp, status, pulse = (e["resource"] for e in full["entry"])
    expect = VECTORS["nordic-bp-full"]["expect"]
    assert [str(c["valueQuantity"]["value"]) for c in bp["component"]] == [
        expect["systolic"],
        expect["diastolic"],
        expect["mean"],
    ]
    assert str(pulse["valueQuantity"]["value"]) == expect["pulse_rate"]
    assert [c["code"]["coding"][0]["display"] for c in status["component"]] == [
        "body-movement",
        "cuff-too-loose",
        "irregular-pulse",
        "improper-body-position",
    ]
    # year 0 is unknown: dated by the kit's fixed receive time, the device's own time kept
    assert bp["effectiveDateTime"] == "2026-01-01T00:00:00+00:00"
    assert {
        "url": "https://homediag.example.org/fhir/StructureDefinition/device-time",
        "valueString": "0000-04-17T20:41:59",
    } in bp["extension"]
    for entry in full["entry"]:
        assert not [i for i in validate(entry["resource"]) if i.severity in ("error", "fatal")]


def test_kit_passes_on_the_blood_pressure_cases():
    result = kit("ble-blood-pressure", str(BP_CASES))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "adapter ble-blood-pressure (built-in)" in out
    assert "Patient/example, Device/example, gateway received 2026-01-01T00:00:00+00:00" in out
    for name in ("nordic-bp-full", "nordic-bp-kpa", "nordic-bp-kpa-bytes", "reserved-flag-bits", "truncated-status"):
        assert f"PASS  {name}" in out
    assert (
        "PASS  truncated-status     refused by the adapter: "
        "ble-blood-pressure: field 'measurement_status', byte offset 17" in out
    )
    assert "all cases pass: 5 of 5 cases passed, 0 failed" in out


def test_a_wrong_expectation_fails_with_a_unified_diff(cases: Path):
    path = cases / "nordic-bp-full.expected.json"
    golden = json.loads(path.read_text(), parse_float=Decimal)
    golden["entry"][0]["resource"]["component"][0]["valueQuantity"]["value"] = 139
    path.write_text(json.dumps(golden, indent=2, default=str))
    result = kit("ble-blood-pressure", str(cases))
    assert result.exit_code == 1
    out = result.stdout
    assert "FAIL  nordic-bp-full" in out and "the Observations differ from nordic-bp-full.expected.json" in out
    assert "entry[0].resource.component[0].valueQuantity.value: expected 139, got 138" in out
    assert "--- nordic-bp-full.expected.json" in out and "+++ nordic-bp-full: the adapter's output" in out
    assert '-              "value": 139' in out and '+              "value": 138' in out
    assert "PASS  nordic-bp-kpa " in out  # the others still pass
    assert "FAILED: 4 of 5 cases passed, 1 failed" in out


def test_a_precision_change_is_a_difference(cases: Path):
    """Golden files compare as exact decimals: 138.0 is not 138."""
    path = cases / "nordic-bp-full.expected.json"
    path.write_text(path.read_text().replace('"value": 138,', '"value": 138.0,', 1))
    result = kit("ble-blood-pressure", str(cases))
    assert result.exit_code == 1
    assert '"value": 138.0' in result.stdout


def test_a_must_refuse_case_fails_when_the_payload_is_accepted_or_refused_for_another_reason(cases: Path):
    (cases / "nordic-bp-kpa.expected.json").write_text('{"refuse": "reserved flag bits"}')
    (cases / "truncated-status.expected.json").write_text('{"refuse": "field \'systolic\'"}')
    result = kit("ble-blood-pressure", str(cases))
    assert result.exit_code == 1
    out = result.stdout
    assert (
        "FAIL  nordic-bp-kpa" in out
        and "expected a refusal containing 'reserved flag bits', but the payload was not refused (accepted); it gave:"
        in out
    )
    assert "entry[0] Blood pressure at 2026-01-01T00:00:00+00:00: 142 mm[Hg], 83 mm[Hg], 119 mm[Hg]" in out
    assert "FAIL  truncated-status" in out and "refused by the adapter, but not with \"field 'systolic'\"" in out
    assert "field 'measurement_status', byte offset 17" in out


def test_a_payload_refused_by_the_profile_rules_passes_a_refuse_case_and_fails_a_bundle_case(tmp_path: Path):
    (tmp_path / "impossible.hex").write_text("00 F401 5800 7800\n")  # 500 mmHg systolic
    (tmp_path / "impossible.expected.json").write_text('{"refuse": "outside the physiologic limits"}')
    result = kit("ble-blood-pressure", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "refused by the profile rules: blood-pressure: " in result.stdout

    trial = try_payload(BleBloodPressureAdapter(), bytes.fromhex("00F40158007800"))
    (tmp_path / "impossible.expected.json").write_text(fhirjson.dumps(trial.bundle()))
    result = kit("ble-blood-pressure", str(tmp_path))
    assert result.exit_code == 1
    assert "the profile rules refuse them, so ingest would reject the reading" in result.stdout
    assert "Bundle.entry[0].resource.component[0].valueQuantity.value" in result.stdout


def test_a_missing_expected_file_fails_and_says_how_to_make_it_and_update_writes_it(cases: Path):
    (cases / "nordic-bp-kpa.expected.json").unlink()
    (cases / "truncated-status.expected.json").unlink()
    result = kit("ble-blood-pressure", str(cases))
    assert result.exit_code == 1
    assert "FAIL  nordic-bp-kpa " in result.stdout
    assert "no nordic-bp-kpa.expected.json: write the Observations you expect there" in result.stdout
    assert "--update" in result.stdout

    updated = kit("ble-blood-pressure", str(cases), "--update")
    assert updated.exit_code == 0, updated.output
    assert "WROTE nordic-bp-kpa" in updated.stdout and "check it by hand" in updated.stdout
    assert (cases / "nordic-bp-kpa.expected.json").read_text() == (BP_CASES / "nordic-bp-kpa.expected.json").read_text()
    refusal = json.loads((cases / "truncated-status.expected.json").read_text())
    assert "measurement_status" in refusal["refuse"] and "byte offset 17" in refusal["refuse"]
    again = kit("ble-blood-pressure", str(cases))
    assert again.exit_code == 0 and "all cases pass: 5 of 5" in again.stdout


def test_update_leaves_passing_cases_alone(cases: Path):
    before = (cases / "truncated-status.expected.json").read_text()
    result = kit("ble-blood-pressure", str(cases), "--update")
    assert result.exit_code == 0
    assert "WROTE" not in result.stdout
    assert (cases / "truncated-status.expected.json").read_text() == before


def test_odd_folders_and_files_are_reported(tmp_path: Path):
    assert kit("ble-blood-pressure", str(tmp_path / "nope")).exit_code == 2
    empty = kit("ble-blood-pressure", str(tmp_path))
    assert empty.exit_code == 2 and "holds no cases" in empty.stderr
    unknown = kit("ble-bloodpressure", str(BP_CASES))
    assert unknown.exit_code == 2 and "no adapter 'ble-bloodpressure'" in unknown.stderr

    (tmp_path / "orphan.expected.json").write_text('{"refuse": "x"}')
    (tmp_path / "as-json.json").write_text('{"systolic": 120}')
    (tmp_path / "as-json.expected.json").write_text('{"refuse": "x"}')
    (tmp_path / "bad-hex.hex").write_text("1E 8A0Z\n")
    (tmp_path / "bad-hex.expected.json").write_text('{"refuse": "x"}')
    (tmp_path / "bad-expected.hex").write_text("00 7800 5800 6400\n")
    (tmp_path / "bad-expected.expected.json").write_text('{"resourceType": "Observation"}')
    (tmp_path / "notes.md").write_text("ignored")
    result = kit("ble-blood-pressure", str(tmp_path))
    assert result.exit_code == 1
    out = result.stdout
    assert "orphan.expected.json has no payload" in out
    assert "reads bytes (input_kind 'bytes'): give the payload as as-json.hex" in out
    assert "bad-hex.hex is not hexadecimal" in out
    assert 'must be a FHIR Bundle of the expected Observations, or {"refuse"' in out
    assert "notes" not in out


def test_hex_files_may_carry_comments_and_separators(tmp_path: Path):
    (tmp_path / "c.hex").write_text("# a comment line\n00 # flags\n78:00 58:00\t6400  # systolic, diastolic, mean\n")
    (tmp_path / "d.hex").write_text("00780058006400")
    [c, d] = find_cases(tmp_path)
    adapter = BleBloodPressureAdapter()
    assert run_case(adapter, c, update=True).status == "written"
    assert (tmp_path / "c.expected.json").read_text().count('"value": 120') == 1
    (tmp_path / "d.expected.json").write_text((tmp_path / "c.expected.json").read_text())
    assert run_case(adapter, d).status == "pass"


class _Crashing:
    id = "crashing"
    description = "raises KeyError instead of DecodeError"
    input_kind = "bytes"
    reads = ("body-temperature",)

    def decode(self, payload: bytes) -> list[Reading]:
        return [{}["celsius"]]


class _Undeclared:
    id = "undeclared"
    description = "returns a reading it does not declare"
    input_kind = "bytes"
    reads = ("body-weight",)

    def decode(self, payload: bytes) -> list[Reading]:
        return [Reading("body-temperature", value=Measured("body-temperature", Number(Decimal("37.0")), "Cel"))]


class _BadUnit:
    id = "bad-unit"
    description = "a unit the measurement has no conversion for"
    input_kind = "bytes"
    reads = ("body-temperature",)

    def decode(self, payload: bytes) -> list[Reading]:
        if not payload:
            raise DecodeError("empty", field="payload", offset=0)
        return [Reading("body-temperature", value=Measured("body-temperature", Number(Decimal("37.0")), "C"))]


@pytest.mark.parametrize(
    ("adapter", "says"),
    [
        (
            _Crashing(),
            [
                "crashing: decode raised KeyError: 'celsius' (at test_conformance.py:",
                "an adapter refuses a payload by raising DecodeError",
            ],
        ),
        (_Undeclared(), ["breaks its own declaration"]),
        (_BadUnit(), ["building the body-temperature Observation", "unit 'C' has no conversion to 'Cel'"]),
    ],
)
def test_adapter_bugs_fail_the_case_with_what_went_wrong(tmp_path: Path, adapter, says):
    (tmp_path / "c.hex").write_text("00")
    (tmp_path / "c.expected.json").write_text('{"refuse": "x"}')
    [case] = find_cases(tmp_path)
    result = run_case(adapter, case, update=True)
    assert result.status == "fail"
    text = " ".join([result.summary, *result.details])
    assert all(s in text for s in says), text
    assert (tmp_path / "c.expected.json").read_text() == '{"refuse": "x"}'  # a bug is never written as expected


def test_try_payload_uses_the_fixed_context_and_names_the_bundle_entry_of_an_issue():
    trial = try_payload(BleBloodPressureAdapter(), bytes.fromhex("0078005800640000"[:14]))
    assert trial.verdict == "accepted"
    [entry] = trial.bundle()["entry"]
    assert entry["resource"]["subject"] == {"reference": "Patient/example"}
    assert entry["resource"]["device"] == {"reference": "Device/example"}
    assert entry["resource"]["effectiveDateTime"] == EXAMPLE_RECEIVED_AT.isoformat()
    assert entry["fullUrl"] == "urn:uuid:" + "-".join(
        (
            entry["resource"]["id"][:8],
            entry["resource"]["id"][8:12],
            entry["resource"]["id"][12:16],
            entry["resource"]["id"][16:20],
            entry["resource"]["id"][20:],
        )
    )
    assert Case("x", None, Path("x.expected.json")).payload is None
