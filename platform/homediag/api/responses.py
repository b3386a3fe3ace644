"""FHIR JSON responses and OperationOutcome errors."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from homediag.errors import ServiceError
from homediag.fhir_profiles import Issue, fhirjson, operation_outcome

FHIR_JSON = "application/fhir+json"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return fhirjson.dumps(content).encode("utf-8")


class JsonResponse(FhirResponse):
    media_type = "application/json"


class FhirError(ServiceError):
    """An error of the HTTP face itself with an explicit ``status`` (prefer a ``homediag.errors`` class)."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        expression: str | None = None,
        *,
        issues: list[Issue] | None = None,
    ) -> None:
        self.status = status  # type: ignore[misc]
        super().__init__(diagnostics, expression, issues=issues or [Issue("error", code, diagnostics, expression)])

    @property
    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": 'Bearer realm="homediag"'} if self.status == 401 else None


def error_response(exc: ServiceError) -> FhirResponse:
    """The one mapping of a service error to HTTP: its status, its headers, an OperationOutcome."""
    return FhirResponse(operation_outcome(exc.issues), status_code=exc.status, headers=exc.headers)
