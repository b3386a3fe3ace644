"""FHIR JSON responses and OperationOutcome errors."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from homediag.fhir_profiles import Issue, fhirjson, operation_outcome

FHIR_JSON = "application/fhir+json"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return fhirjson.dumps(content).encode("utf-8")


class JsonResponse(FhirResponse):
    media_type = "application/json"


class FhirError(Exception):
    """An error the API answers with an OperationOutcome and ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        expression: str | None = None,
        *,
        issues: list[Issue] | None = None,
    ) -> None:
        self.status = status
        self.issues = issues or [Issue("error", code, diagnostics, expression)]
        super().__init__(diagnostics)

    def response(self) -> FhirResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="homediag"'} if self.status == 401 else None
        return FhirResponse(operation_outcome(self.issues), status_code=self.status, headers=headers)
