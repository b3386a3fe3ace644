"""The base FHIR rules ``check_rules`` runs on every reading: invalid references and UCUM quantities are found
wherever they sit in the resource, named by their FHIRPath, in document order."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from homediag.fhir_profiles import terminology as t
from homediag.fhir_profiles.invariants import _faultless, _scan, check_invariants
from homediag.fhir_profiles.ucum import is_valid_ucum


def _observation() -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": t.LOINC, "code": "85354-9"}]},
        "subject": {"reference": "Patient/p-1"},
        "device": {"reference": "not a reference"},
        "component": [
            {"code": {"text": "a"}, "valueQuantity": {"value": 120, "system": t.UCUM, "code": "mm[Hg]"}},
            {"code": {"text": "b"}, "valueQuantity": {"value": 80, "system": t.UCUM, "code": "mmHg"}},
            {"code": {"text": "c"}, "valueQuantity": {"value": 80, "system": t.UCUM}},
        ],
        "derivedFrom": [{"reference": "Observation/ok"}, {"reference": "also wrong"}],
    }


def test_every_bad_reference_and_ucum_code_is_named_by_its_path_in_document_order() -> None:
    found = [(i.code, i.expression) for i in check_invariants(_observation())]
    assert found == [
        ("value", "Observation.device.reference"),
        ("value", "Observation.derivedFrom[1].reference"),
        ("code-invalid", "Observation.component[1].valueQuantity.code"),
        ("required", "Observation.component[2].valueQuantity.code"),
    ]


def test_a_valid_observation_has_no_invariant_issue() -> None:
    resource = _observation()
    resource["device"] = {"reference": "Device/d-1"}
    resource["derivedFrom"] = [{"reference": "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"}]
    resource["component"] = resource["component"][:1]  # type: ignore[index]
    assert check_invariants(resource) == []


def test_the_coding_index_answers_as_the_table_does() -> None:
    """``matching`` looks codes up in an index; it names the same measurements, in the same order, as a scan."""

    def scan(system: str | None, code: str) -> list[t.Measurement]:
        return [
            m
            for m in t.MEASUREMENTS.values()
            if (m.matches(system, code) if system else any(c.code == code for c in m.codings))
        ]

    systems = (None, t.MDC, t.LOINC, *t.NPU_SYSTEMS, "http://example.org/other")
    codes = {c.code for m in t.MEASUREMENTS.values() for c in m.codings} | {"no-such-code"}
    for system in systems:
        for code in codes:
            assert t.matching(system, code) == scan(system, code), (system, code)
    assert len(t.matching(t.LOINC, "8867-4")) == 3  # heart rate: pulse, and two that share its LOINC


_LEAF = st.sampled_from(
    [t.UCUM, "http://loinc.org", "mm[Hg]", "mmHg", "", " kg", "Patient/p-1", "not a reference", None, 3, 1.5, True]
)
_KEY = st.sampled_from(["system", "code", "value", "reference", "valueQuantity", "component", "coding", "x"])
_TREE = st.recursive(
    _LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEY, inner, max_size=5), max_leaves=25
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_KEY, _TREE, max_size=6))
def test_the_pathless_pass_finds_a_fault_exactly_when_the_path_building_scan_does(resource: dict[str, Any]) -> None:
    """A faultless resource skips the scan that names paths, so the two must agree on every resource."""
    references: list[tuple[str, str]] = []
    quantities: list[tuple[str, dict[str, Any]]] = []
    _scan(resource, "Observation", references, quantities)
    faulty = bool(references) or any(
        q.get("code") is None or not is_valid_ucum(str(q.get("code"))) for _, q in quantities
    )
    assert _faultless(resource) is not faulty
    assert bool(check_invariants({**resource, "resourceType": "Basic"})) is faulty


def test_a_bad_reference_inside_a_dict_subclass_is_still_found() -> None:
    """``_faultless`` walks plain dicts and lists only; anything else sends the resource through ``_scan``."""
    resource = {"resourceType": "Basic", "subject": OrderedDict(reference="not a reference")}
    assert [(i.code, i.expression) for i in check_invariants(resource)] == [("value", "Basic.subject.reference")]
