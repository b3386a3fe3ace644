"""The profiles: the PHD IG examples pass, broken variants are refused with their path, and the
published StructureDefinitions, docs/profiles.md and the validator come from one table."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.structuredefinition import StructureDefinition

from homediag.adapters.devices.ieee11073 import Number
from homediag.adapters.devices.readings import DeviceTime, Measured, Reading
from homediag.fhir_profiles import BuildContext, build, check_rules, has_errors, validate
from homediag.fhir_profiles import terminology as t
from homediag.fhir_profiles.profiles import PROFILES, profile_for
from homediag.fhir_profiles.publish import profiles_markdown, structure_definitions

ROOT = Path(__file__).resolve().parents[3]
PHD = Path(__file__).parents[2] / "fixtures" / "phd-ig"


def _observations() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(PHD.glob("*.json")):
        doc = json.loads(path.read_text())
        resources = [e["resource"] for e in doc.get("entry", [])] if doc["resourceType"] == "Bundle" else [doc]
        found += [(f"{path.stem}#{i}", r) for i, r in enumerate(resources) if r["resourceType"] == "Observation"]
    return found


CLAIMING = [(name, r) for name, r in _observations() if profile_for(r) is not None]


def test_the_phd_ig_examples_cover_several_measurements() -> None:
    assert {profile_for(r).id for _, r in CLAIMING} >= {  # type: ignore[union-attr]
        "homediag-blood-pressure",
        "homediag-blood-pressure-status",
        "homediag-spo2",
        "homediag-pulse-rate-oximeter",
        "homediag-body-temperature",
        "homediag-glucose-undetermined-plasma",
    }


@pytest.mark.parametrize(("name", "resource"), CLAIMING, ids=[n for n, _ in CLAIMING])
def test_every_phd_ig_observation_of_a_profiled_measurement_validates(name: str, resource: dict[str, Any]) -> None:
    issues = validate(resource)
    assert not has_errors(issues), [i.as_fhir() for i in issues]


def _bp() -> dict[str, Any]:
    return json.loads((PHD / "compound-numeric-blood-pressure.json").read_text())


def _temperature() -> dict[str, Any]:
    return json.loads((PHD / "temperature-observation.json").read_text())


def _break(base: dict[str, Any], change: Any) -> dict[str, Any]:
    broken = copy.deepcopy(base)
    change(broken)
    return broken


BROKEN = {
    "wrong unit": (
        _temperature,
        lambda r: r["valueQuantity"].update(code="kg", unit="kg"),
        "Observation.valueQuantity.code",
    ),
    "non-UCUM mmHg": (
        _bp,
        lambda r: r["component"][0]["valueQuantity"].update(code="mmHg"),
        "Observation.component[0].valueQuantity.code",
    ),
    "unit system not UCUM": (
        _temperature,
        lambda r: r["valueQuantity"].update(system="http://example.org/units"),
        "Observation.valueQuantity.system",
    ),
    "missing subject": (_bp, lambda r: r.pop("subject"), "Observation.subject"),
    "subject not a patient": (
        _temperature,
        lambda r: r.update(subject={"reference": "Device/abc"}),
        "Observation.subject.reference",
    ),
    "value with dataAbsentReason": (
        _temperature,
        lambda r: r.update(dataAbsentReason={"coding": [{"system": t.DATA_ABSENT_REASON, "code": "error"}]}),
        "Observation.dataAbsentReason",
    ),
    "body temperature 60 Cel": (
        _temperature,
        lambda r: r["valueQuantity"].update(value=60),
        "Observation.valueQuantity.value",
    ),
    "systolic 400": (
        _bp,
        lambda r: r["component"][0]["valueQuantity"].update(value=400),
        "Observation.component[0].valueQuantity.value",
    ),
    "SpO2 150 %": (
        lambda: json.loads((PHD / "numeric-spo2-alarm.json").read_text()),
        lambda r: r["valueQuantity"].update(value=150),
        "Observation.valueQuantity.value",
    ),
    "no time offset": (
        _temperature,
        lambda r: r.update(effectiveDateTime="2025-01-08T19:07:48"),
        "Observation.effectiveDateTime",
    ),
    "no effective time": (_temperature, lambda r: r.pop("effectiveDateTime"), "Observation.effective[x]"),
    "status outside its required binding": (_temperature, lambda r: r.update(status="done"), "Observation.status"),
    "vital sign without its LOINC": (
        _temperature,
        lambda r: r["code"].update(coding=r["code"]["coding"][:1]),
        "Observation.code.coding",
    ),
    "vital sign without vital-signs category": (
        _temperature,
        lambda r: r.update(category=r["category"][1:]),
        "Observation.category",
    ),
    "blood pressure with a value": (
        _bp,
        lambda r: r.update(valueQuantity={"value": 120, "system": t.UCUM, "code": "mm[Hg]"}),
        "Observation.value[x]",
    ),
    "blood pressure without diastolic": (
        _bp,
        lambda r: r.update(component=[r["component"][0]]),
        "Observation.component",
    ),
    "malformed reference": (
        _temperature,
        lambda r: r.update(device={"reference": "Device with spaces"}),
        "Observation.device.reference",
    ),
    "obs-7 component repeats the code with a value": (
        _temperature,
        lambda r: r.update(
            component=[{"code": r["code"], "valueQuantity": {"value": 37, "system": t.UCUM, "code": "Cel"}}]
        ),
        "Observation.component[0].value[x]",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_variants_are_refused_with_the_path(case: str) -> None:
    make, change, expression = BROKEN[case]
    issues = validate(_break(make(), change))
    errors = [i for i in issues if i.severity == "error"]
    assert expression in [i.expression for i in errors], [i.as_fhir() for i in issues]


def test_alternative_units_are_accepted_and_judged_in_the_canonical_unit() -> None:
    fahrenheit = _break(
        _temperature(), lambda r: r["valueQuantity"].update(value=Decimal("98.6"), code="[degF]", unit="°F")
    )
    assert not has_errors(validate(fahrenheit))
    fever_of_60 = _break(_temperature(), lambda r: r["valueQuantity"].update(value=140, code="[degF]"))
    (error,) = [i for i in validate(fever_of_60) if i.severity == "error"]
    assert "60.0 Cel" in error.diagnostics


def test_an_unprofiled_code_gets_only_a_warning() -> None:
    unknown = _break(_temperature(), lambda r: r.update(code={"coding": [{"system": t.MDC, "code": "999999"}]}))
    issues = check_rules(unknown)
    assert [i.code for i in issues] == ["code-unknown"]


# -- builders for every measurement ------------------------------------------------------------

QUANTITIES = [m for m in t.MEASUREMENTS.values() if m.kind == "quantity" and m.limits]


@pytest.mark.parametrize("m", QUANTITIES, ids=[m.key for m in QUANTITIES])
def test_every_quantity_measurement_builds_a_valid_observation_in_its_canonical_unit(m: t.Measurement) -> None:
    low, high = m.limits  # type: ignore[misc]
    middle = ((low + high) / 2).quantize(Decimal("0.1"))
    reading = Reading(
        m.key, value=Measured(m.key, Number(value=middle), m.unit or ""), device_time=DeviceTime(2026, 11, 20, 8, 30, 0)
    )
    ctx = BuildContext("p1", "dev1", datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    (built,) = build(reading, ctx)
    Observation.model_validate(built.resource)
    assert validate(built.resource) == []
    assert built.resource["valueQuantity"]["code"] == m.unit
    assert built.resource["effectiveDateTime"] == "2026-11-20T08:30:00+01:00"
    if m.vital_signs:
        assert {"system": t.LOINC, "code": m.loinc.code} in [  # type: ignore[union-attr]
            {k: c[k] for k in ("system", "code")} for c in built.resource["code"]["coding"]
        ]


@pytest.mark.parametrize(
    ("key", "value", "unit", "expected"),
    [
        ("body-temperature", "98.6", "[degF]", "37.0"),
        ("body-weight", "165", "[lb_av]", "74.8"),
        ("body-weight", "165.0", "[lb_av]", "74.84"),
        ("glucose-capillary-plasma", "99", "mg/dL", "5.5"),
        ("glucose-capillary-whole-blood", "0.00099", "kg/L", "5.5"),
        ("hba1c", "7.0", "%", "53"),
        ("body-height", "1.80", "m", "180"),
    ],
)
def test_builders_convert_alternative_units_keeping_the_precision_sent(
    key: str, value: str, unit: str, expected: str
) -> None:
    reading = Reading(
        key, value=Measured(key, Number(value=Decimal(value)), unit), device_time=DeviceTime(2026, 11, 20, 8, 30, 0)
    )
    (built,) = build(reading, BuildContext("p1", "dev1", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)))
    quantity = built.resource["valueQuantity"]
    assert (str(quantity["value"]), quantity["code"]) == (expected, t.measurement(key).unit)


def test_npu_system_is_configurable_and_both_are_accepted() -> None:
    reading = Reading(
        "body-weight",
        value=Measured("body-weight", Number(value=Decimal("72.4")), "kg"),
        device_time=DeviceTime(2026, 11, 20, 8, 30, 0),
    )
    for system in t.NPU_SYSTEMS:
        (built,) = build(
            reading, BuildContext("p1", "dev1", datetime(2026, 11, 26, 8, 0, tzinfo=UTC), npu_system=system)
        )
        assert {"system": system, "code": "NPU03804"} in [
            {k: c[k] for k in ("system", "code")} for c in built.resource["code"]["coding"]
        ]
        assert validate(built.resource) == []


def test_spo2_in_percent_does_not_carry_the_fraction_npu_code() -> None:
    reading = Reading(
        "spo2", value=Measured("spo2", Number(value=Decimal(97)), "%"), device_time=DeviceTime(2026, 11, 20, 8, 30, 0)
    )
    (built,) = build(reading, BuildContext("p1", "dev1", datetime(2026, 11, 26, 8, 0, tzinfo=UTC)))
    assert "NPU27280" not in json.dumps(built.resource["code"])


# -- one source: StructureDefinitions and the docs ---------------------------------------------


def test_published_structure_definitions_are_current_and_valid() -> None:
    generated = structure_definitions()
    folder = ROOT / "fhir_profiles" / "structuredefinitions"
    on_disk = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert on_disk == generated, "run `homediag profiles publish` and commit the result"
    for sd in generated.values():
        StructureDefinition.model_validate(sd)
        assert sd["url"] == PROFILES[sd["id"].removeprefix("homediag-")].url


def test_docs_profiles_md_is_generated_from_the_table() -> None:
    assert (ROOT / "docs" / "profiles.md").read_text() == profiles_markdown(), (
        "run `homediag profiles publish` and commit the result"
    )


def test_structure_definition_carries_the_limits_of_the_table() -> None:
    sd = structure_definitions()["homediag-body-temperature"]
    limits = next(c for c in sd["differential"]["element"][0]["constraint"] if c["key"] == "hd-limits")
    assert "code = 'Cel' implies (value >= 13 and value <= 47)" in limits["expression"]
