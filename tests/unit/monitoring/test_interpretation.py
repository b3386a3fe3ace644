"""Triage written into an Observation (interpretation, referenceRange) and reviews as Task + Provenance: valid
FHIR R4B, and the stored resource is never changed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.task import Task
from test_triage import GENERAL, HYPERTENSION, bp

from homediag.monitoring import triage
from homediag.monitoring.interpretation import TRIAGE_SYSTEM, V3_INTERPRETATION, interpreted
from homediag.monitoring.reviews import review_resources
from homediag.monitoring.triage import MDC


def codes(concepts: list[dict]) -> dict[str, str]:
    return {c["system"]: c["code"] for concept in concepts for c in concept["coding"]}


def test_a_blood_pressure_gets_interpretation_per_component_and_at_the_top() -> None:
    stored = bp(182, 84)
    kept = copy.deepcopy(stored)
    out = interpreted(stored, triage(stored, HYPERTENSION), HYPERTENSION, "thresholds version 2 (hypertension)")
    assert stored == kept  # the stored resource is shared by the caller; never changed
    assert codes(out["interpretation"]) == {V3_INTERPRETATION: "HH", TRIAGE_SYSTEM: "red"}
    assert codes(out["component"][0]["interpretation"]) == {V3_INTERPRETATION: "HH", TRIAGE_SYSTEM: "red"}
    assert codes(out["component"][1]["interpretation"]) == {V3_INTERPRETATION: "N", TRIAGE_SYSTEM: "green"}
    assert "interpretation" not in out["component"][2]  # the mean pressure has no thresholds
    systolic_range = out["component"][0]["referenceRange"][0]
    assert (systolic_range["low"]["value"], systolic_range["high"]["value"]) == (100, 135)
    assert systolic_range["low"]["code"] == "mm[Hg]"
    assert "version 2 (hypertension)" in systolic_range["text"]
    Observation.model_validate(out)


def test_a_single_value_gets_its_range_at_the_top_and_a_reading_without_thresholds_is_unchanged() -> None:
    spo2 = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": MDC, "code": "150456"}]},
        "effectiveDateTime": "2026-03-01T08:00:00+01:00",
        "valueQuantity": {"value": 93, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
    }
    out = interpreted(spo2, triage(spo2, GENERAL), GENERAL, "v0")
    assert codes(out["interpretation"]) == {V3_INTERPRETATION: "L", TRIAGE_SYSTEM: "yellow"}
    assert out["referenceRange"][0]["low"]["value"] == 94 and "high" not in out["referenceRange"][0]
    Observation.model_validate(out)
    assert interpreted(spo2, triage(spo2, HYPERTENSION), HYPERTENSION, "v0") == spo2


def test_a_review_is_a_completed_task_and_a_provenance() -> None:
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    task, provenance = review_resources("r1", "p1", ["o1", "o2"], "clin-1", at, "set ind", "all-green")
    Task.model_validate(task)
    Provenance.model_validate(provenance)
    assert task["status"] == "completed" and task["for"] == {"reference": "Patient/p1"}
    assert [i["valueReference"]["reference"] for i in task["input"]] == ["Observation/o1", "Observation/o2"]
    assert task["executionPeriod"]["end"] == "2026-03-02T09:30:00Z"
    assert [t["reference"] for t in provenance["target"]] == ["Task/r1", "Observation/o1", "Observation/o2"]
    assert provenance["agent"][0]["type"]["coding"][0]["code"] == "VRF"
