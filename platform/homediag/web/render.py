"""Pages: the Jinja2 environment of each language and the one function routes render with."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from homediag.runtime import Runtime

from . import sessions
from .i18n import LANG_COOKIE, UNIT_NAMES, Formats, language_of, translations
from .reasons import triage_reason


@cache
def environment(lang: str) -> Environment:
    env = Environment(
        loader=PackageLoader("homediag.web", "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


def language(request: Request) -> str:
    return language_of(request.cookies.get(LANG_COOKIE))


def gettext(request: Request):  # type: ignore[no-untyped-def]
    return translations(language(request)).gettext


def local_path(candidate: str | None, default: str = "/app/") -> str:
    """A path in this app to go back to (never another host: an open redirect)."""
    if candidate and candidate.startswith("/app") and not candidate.startswith("//") and "\\" not in candidate:
        return candidate
    return default


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    rt: Runtime = request.app.state.runtime
    lang = language(request)
    found = getattr(request.state, "web_session", None)
    csrf = sessions.csrf_token(request)
    plain = translations(lang).gettext  # no %-formatting: a unit may be "%"
    fmt = Formats(lang, rt.local_zone)
    html = (
        environment(lang)
        .get_template(template)
        .render(
            lang=lang,
            fmt=fmt,
            user=found.principal if found is not None else None,
            csrf=csrf,
            unit=lambda text: plain(text) if text in UNIT_NAMES else text,
            reason=lambda text: triage_reason(text, plain, fmt.number),  # monitoring's reasons, translated
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status_code)
    new_anon = getattr(request.state, "new_anon_csrf", None)
    if new_anon:
        sessions.set_cookie(response, rt, sessions.ANON_CSRF_COOKIE, new_anon)
    return response
