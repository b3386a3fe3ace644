"""The CapabilityStatement served at ``GET /fhir/metadata``: exactly what the API serves (a test walks
every interaction and search parameter it declares), and SMART on FHIR discovery from the configured
OpenID Connect issuer."""

from __future__ import annotations

from typing import Any

from homediag import __version__
from homediag.bulk import request as bulk_request
from homediag.fhir_profiles.profiles import PROFILES
from homediag.search_params import INCLUDES, OBSERVATION_PARAMETER_TYPES

# the HL7 Personal Health Device IG, whose gateway transactions POST /fhir and POST /fhir/Observation accept
PHD_IG = "http://hl7.org/fhir/uv/phd/ImplementationGuide/hl7.fhir.uv.phd"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
STRUCTURE_DEFINITION_PARAMETERS = {"url": "uri", "name": "string", "type": "token", "version": "token", "_id": "token"}
AUDIT_EVENT_PARAMETERS = {"patient": "reference", "type": "token"}
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata"


def _interactions(*codes: str) -> list[dict[str, str]]:
    return [{"code": c} for c in codes]


def _params(types: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "type": kind} for name, kind in types.items()]


def capability_statement(base: str, smart: dict[str, Any] | None = None) -> dict[str, Any]:
    """``smart``: the SMART configuration (``authorization_endpoint``, ``token_endpoint``), when an OpenID
    Connect issuer is configured; its endpoints are then published in the ``oauth-uris`` extension."""
    security: dict[str, Any] = {
        "service": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": code}
                    for code in (("OAuth", "SMART-on-FHIR") if smart else ("OAuth",))
                ]
            }
        ],
        "description": (
            "Bearer tokens: an API token, or an OpenID Connect token of the configured issuer. Clinicians read "
            "under purpose TREAT, only patients in their care teams whose consent permits it."
        ),
    }
    if smart:
        security["extension"] = [
            {
                "url": OAUTH_URIS,
                "extension": [
                    {"url": "authorize", "valueUri": smart["authorization_endpoint"]},
                    {"url": "token", "valueUri": smart["token_endpoint"]},
                ],
            }
        ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-30",
        "kind": "instance",
        "software": {"name": "homediag", "version": __version__},
        "implementation": {"description": "homediag home-diagnostics pilot platform", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "implementationGuide": [PHD_IG],
        "instantiates": [BULK_DATA + "/CapabilityStatement/bulk-data"],
        "rest": [
            {
                "mode": "server",
                "security": security,
                "interaction": _interactions("transaction", "batch"),
                "operation": [_export("export", "system")],
                "resource": [
                    {
                        "type": "Observation",
                        "supportedProfile": [p.url for p in PROFILES.values()],
                        "interaction": _interactions(
                            "read", "vread", "history-instance", "history-type", "search-type", "create"
                        ),
                        "versioning": "versioned",
                        "readHistory": False,
                        "conditionalCreate": True,
                        "conditionalRead": "full-support",
                        "searchInclude": list(INCLUDES),
                        "searchParam": _params(OBSERVATION_PARAMETER_TYPES),
                        "operation": [
                            {
                                "name": "validate",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
                            }
                        ],
                    },
                    {
                        "type": "Patient",
                        "interaction": _interactions("read", "vread", "history-instance", "create"),
                        "versioning": "versioned",
                        "readHistory": False,
                        "conditionalRead": "full-support",
                        "operation": [_export("patient-export", "patient")],
                    },
                    {
                        "type": "Group",
                        "interaction": _interactions("read"),
                        "operation": [_export("group-export", "group")],
                    },
                    {
                        "type": "Device",
                        "interaction": _interactions("read", "vread", "history-instance"),
                        "versioning": "versioned",
                        "readHistory": False,
                        "conditionalRead": "full-support",
                    },
                    {
                        "type": "Consent",
                        "versioning": "versioned-update",
                        "readHistory": True,
                        "conditionalRead": "full-support",
                        "interaction": _interactions(
                            "read", "vread", "create", "update", "history-instance", "search-type"
                        ),
                        "searchParam": _params({"patient": "reference"}),
                    },
                    {
                        "type": "StructureDefinition",
                        "interaction": _interactions("read", "vread", "search-type"),
                        "versioning": "versioned",
                        "readHistory": False,
                        "searchParam": _params(STRUCTURE_DEFINITION_PARAMETERS),
                    },
                    {
                        "type": "AuditEvent",
                        "interaction": _interactions("search-type"),
                        "searchParam": _params(AUDIT_EVENT_PARAMETERS),
                    },
                    *(  # reviews of readings (homediag.monitoring): clinicians, patients in their care
                        {
                            "type": kind,
                            "interaction": _interactions("read", "search-type"),
                            "searchParam": _params({"patient": "reference"}),
                        }
                        for kind in ("Task", "Provenance")
                    ),
                ],
            }
        ],
    }


def _export(definition: str, level: str) -> dict[str, Any]:
    """A Bulk Data export operation and what its kick-off takes (from ``bulk.request``, which reads it): the
    parameters are listed after "Parameters:" (tests/api/test_fhir_capability.py kicks off with each)."""
    names = [p for p in bulk_request.PARAMETERS if p != "patient" or level != "system"]
    text = (
        "Kick-off by GET, or by POST of a Parameters resource, with 'Prefer: respond-async'. "
        f"Parameters: {', '.join(names)}. "
        f"_type: {', '.join(bulk_request.SUPPORTED_TYPES)}. _outputFormat: {bulk_request.NDJSON}. "
        f"_typeFilter: {', '.join(bulk_request.FILTERED_TYPES)}, with the search parameters of its searchParam. "
        + ("patient: in a POST only. " if level != "system" else "")
        + "Not supported (refused, or ignored with 'Prefer: handling=lenient'): includeAssociatedData."
    )
    return {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/{definition}", "documentation": text}
