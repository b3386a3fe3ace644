"""The projection of a resource onto the profile's elements for pseudonymous readers (pure)."""

from __future__ import annotations

from homediag.fhir_profiles.builder import EXT_DEVICE_TIME, EXT_GATEWAY_RECEIVED
from homediag.fhir_profiles.projection import Projection

PROJECTION = Projection(
    time=lambda text: f"shifted({text})",
    reference=lambda ref: f"P:{ref}" if ref.startswith(("Patient/", "Device/")) else None,
    safe=lambda text: "0101901234" not in text,
)


def observation() -> dict:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "text": {"status": "generated", "div": "<div>Synthia</div>"},
        "identifier": [{"system": "urn:x", "value": "0101901234"}],
        "extension": [
            {"url": EXT_GATEWAY_RECEIVED, "valueDateTime": "2026-11-26T10:00:00+01:00"},
            {"url": EXT_DEVICE_TIME, "valueString": "2026-11-26T09:59:00"},
            {"url": "https://vendor.example/user", "valueString": "Synthia"},
        ],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ],
                "text": "Vital Signs",
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Synthia's pulse"}],
            "text": "Synthia's pulse",
        },
        "subject": {"reference": "Patient/p1", "display": "Synthia Testperson"},
        "effectiveDateTime": "2026-11-26T09:59:00+01:00",
        "performer": [{"reference": "Practitioner/nurse-home-visit-team-0001", "display": "Nurse"}],
        "note": [{"text": "Synthia 0101901234"}],
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
        "interpretation": [{"coding": [{"system": "urn:x", "code": "0101901234"}]}],
        "device": {"reference": "Device/d1"},
        "derivedFrom": [{"reference": "Practitioner/x"}],
        "unknownElement": "Synthia",
    }


def test_only_the_profiles_elements_pass():
    shown = PROJECTION.resource(observation())
    assert "Synthia" not in repr(shown) and "0101901234" not in repr(shown) and "Practitioner" not in repr(shown)
    assert shown == {
        "resourceType": "Observation",
        "id": "o1",
        "extension": [{"url": EXT_GATEWAY_RECEIVED, "valueDateTime": "shifted(2026-11-26T10:00:00+01:00)"}],
        "status": "final",
        "category": observation()["category"],  # the terminology's own display passes
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "P:Patient/p1"},
        "effectiveDateTime": "shifted(2026-11-26T09:59:00+01:00)",
        "valueQuantity": observation()["valueQuantity"],
        "device": {"reference": "P:Device/d1"},
    }


def test_an_unknown_resource_type_keeps_its_type_and_id_only():
    assert PROJECTION.resource({"resourceType": "Practitioner", "id": "x", "name": [{"family": "F"}]}) == {
        "resourceType": "Practitioner",
        "id": "x",
    }
