"""FHIR JSON responses and OperationOutcome errors."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from homediag.errors import ServiceError
from homediag.fhir_profiles import fhirjson, operation_outcome

FHIR_JSON = "application/fhir+json"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return fhirjson.dumps_bytes(content)


class JsonResponse(FhirResponse):
    media_type = "application/json"


def error_response(exc: ServiceError) -> FhirResponse:
    """The one mapping of a service error to HTTP: its status, its headers, an OperationOutcome."""
    return FhirResponse(operation_outcome(exc.issues), status_code=exc.status, headers=exc.headers)
