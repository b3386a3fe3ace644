"""The base FHIR rules ``check_rules`` runs on every reading: invalid references and UCUM quantities are found
wherever they sit in the resource, named by their FHIRPath, in document order."""

from __future__ import annotations

from homediag.fhir_profiles import terminology as t
from homediag.fhir_profiles.invariants import check_invariants


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
