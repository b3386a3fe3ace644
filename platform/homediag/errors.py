"""The service's one exception hierarchy.

Every error a caller can cause or must hear about is a ``ServiceError``: it carries the HTTP status it
means and the OperationOutcome issues that say what is wrong and where. The HTTP app maps every
``ServiceError`` to an OperationOutcome response in one handler (``api/app.py``); the CLI prints the
issues and exits non-zero. Modules raise the subclass that says what happened, never an HTTP error.
"""

from __future__ import annotations

from typing import ClassVar

from homediag.fhir_profiles import Issue
from homediag.identity import masked, said


class ServiceError(Exception):
    """Base: ``status`` is the HTTP status, ``code`` the OperationOutcome issue type by default."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "exception"

    def __init__(
        self,
        diagnostics: str = "",
        expression: str | None = None,
        *,
        issues: list[Issue] | None = None,
        code: str | None = None,
    ) -> None:
        self.issues = issues or [Issue("error", code or self.code, diagnostics, expression)]
        super().__init__(diagnostics or "; ".join(i.diagnostics for i in self.issues))

    @property
    def headers(self) -> dict[str, str] | None:
        return None


class BadRequest(ServiceError):
    """What was sent cannot be read: not JSON, not the shape asked for, a search value that cannot be parsed."""

    status = 400
    code = "invalid"


class Unauthenticated(ServiceError):
    """No credential, or one that is unknown, expired or revoked."""

    status = 401
    code = "login"

    @property
    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": 'Bearer realm="homediag"'}


class Forbidden(ServiceError):
    """The caller's role (or purpose of use) may not do this at all, whatever the patient."""

    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    """Does not exist, or may not be seen: the same answer either way."""

    status = 404
    code = "not-found"

    @classmethod
    def resource(cls, resource_type: str, resource_id: str) -> NotFound:
        return cls(  # a CPR typed as an id is never repeated, nor more than the start of an overlong one
            f"{resource_type}/{said(masked(resource_id))} is not known"
        )


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PreconditionFailed(ServiceError):
    """A conditional change (If-Match, a version check) whose condition does not hold: changed meanwhile."""

    status = 412
    code = "conflict"


class PayloadTooLarge(ServiceError):
    """More than a request may carry: a body over the size limit, a list with too many envelopes."""

    status = 413
    code = "too-long"

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Connection": "close"}  # the rest of the body is never read: the connection cannot be reused


class Unprocessable(ServiceError):
    """Readable, but it breaks a rule (a profile, enrolment, a relation)."""

    status = 422
    code = "invalid"


class Unavailable(ServiceError):
    """The store cannot be reached now; the caller may send again (writes are idempotent)."""

    status = 503
    code = "transient"

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": "5"}
