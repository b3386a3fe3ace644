"""Errors on web pages: HTML for people, never an OperationOutcome. Without a session: to the sign-in
page (and back afterwards); a refusal or a page that does not exist: a page saying so."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from homediag.errors import ServiceError, Unauthenticated

from .i18n import translations
from .render import language, render
from .sessions import SignInRequired

PREFIX = "/app"


def is_web(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def error_page(request: Request, exc: ServiceError | None, status: int) -> Response:
    """The web answer to an error (``exc`` None: an HTTP error of the framework, e.g. 404, 405)."""
    _ = translations(language(request)).gettext
    if isinstance(exc, SignInRequired):
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/app/signin?next={quote(back)}", status_code=303)
    if isinstance(exc, Unauthenticated):  # a sign-in that failed: say why, on the sign-in page
        return render(
            request, "signin.html", status_code=401, oidc=False, next="/app/", error=exc.issues[0].diagnostics
        )
    headings = {
        400: _("The request could not be read"),
        403: _("Not allowed"),
        404: _("Not found"),
        422: _("This could not be done"),
        503: _("Try again shortly"),
    }
    message = exc.issues[0].diagnostics if exc is not None and exc.issues else ""
    if status == 404:
        message = _("The page does not exist, or you may not see it.")
    return render(
        request,
        "error.html",
        status_code=status,
        heading=headings.get(status, _("Something went wrong")),
        message=message,
    )
