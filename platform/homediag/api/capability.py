"""The CapabilityStatement served at ``GET /fhir/metadata``."""

from __future__ import annotations

from typing import Any

from homediag import __version__
from homediag.fhir_profiles.profiles import PROFILES
from homediag.search_params import OBSERVATION_PARAMETERS

_PARAM_TYPES = {
    "patient": "reference",
    "subject": "reference",
    "code": "token",
    "category": "token",
    "date": "date",
    "device": "reference",
}


def capability_statement(base: str) -> dict[str, Any]:
    observation_params = [{"name": p, "type": _PARAM_TYPES[p]} for p in OBSERVATION_PARAMETERS if p in _PARAM_TYPES]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "kind": "instance",
        "software": {"name": "homediag", "version": __version__},
        "implementation": {"description": "homediag home-diagnostics pilot platform", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": (
                        "Bearer tokens. Clinicians read under purpose TREAT, only patients whose consent permits it."
                    ),
                },
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "resource": [
                    {
                        "type": "Observation",
                        "supportedProfile": [p.url for p in PROFILES.values()],
                        "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}],
                        "conditionalCreate": True,
                        "searchParam": observation_params,
                        "operation": [
                            {
                                "name": "validate",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
                            }
                        ],
                    },
                    {"type": "StructureDefinition", "interaction": [{"code": "read"}, {"code": "search-type"}]},
                    {"type": "Patient", "interaction": [{"code": "read"}, {"code": "create"}]},
                    {
                        "type": "Consent",
                        "versioning": "versioned",
                        "interaction": [
                            {"code": "read"},
                            {"code": "create"},
                            {"code": "update"},
                            {"code": "history-instance"},
                            {"code": "search-type"},
                        ],
                        "searchParam": [{"name": "patient", "type": "reference"}],
                    },
                    {"type": "Device", "interaction": [{"code": "read"}]},
                    *(  # reviews of readings (homediag.monitoring): clinicians, patients in their care
                        {
                            "type": kind,
                            "interaction": [{"code": "read"}, {"code": "search-type"}],
                            "searchParam": [{"name": "patient", "type": "reference"}],
                        }
                        for kind in ("Task", "Provenance")
                    ),
                ],
            }
        ],
    }
