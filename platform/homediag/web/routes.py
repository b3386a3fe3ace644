"""The web app's routes under ``/app``. Each declares its policy (``api.policy``: ``web-public``,
``web-signed-in``, ``web-clinician``), which authenticates by the session cookie; pages read patient
data only through ``caller.access`` (the access layer), like the API."""

from __future__ import annotations

import mimetypes
from datetime import date, datetime, time, timedelta
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from homediag.api.policy import WEB_CLINICIAN, WEB_CLINICIAN_WRITE, WEB_PUBLIC, WEB_SIGNED_IN, Caller, enforce
from homediag.api.priority import ReadRoute
from homediag.errors import BadRequest, NotFound
from homediag.monitoring import default_groups
from homediag.runtime import Runtime

from . import charts, oidc_flow, predraw, report_view, sessions
from .i18n import LANG_COOKIE, LANGUAGES, Formats, translations
from .patient_view import patient_context
from .render import language, local_path, render
from .report_view import MIN_READINGS, paste_text, summarise
from .thresholds_view import settings_from_form, thresholds_context
from .worklist_view import worklist_context

# GETs on the read threads (api/priority.py)
router = APIRouter(prefix="/app", include_in_schema=False, route_class=ReadRoute)
Public = Annotated[Caller, Depends(enforce(WEB_PUBLIC))]
SignedIn = Annotated[Caller, Depends(enforce(WEB_SIGNED_IN))]
Clinician = Annotated[Caller, Depends(enforce(WEB_CLINICIAN))]
ClinicianWrite = Annotated[Caller, Depends(enforce(WEB_CLINICIAN_WRITE))]
STATIC = {"app.css", "favicon.svg"}


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


@router.get("/")
def home(request: Request, caller: SignedIn) -> Response:
    if caller.user.role == "clinician":
        return _redirect("/app/worklist")
    return _redirect("/app/admin/patients")


@router.get("/worklist")
def worklist(
    request: Request,
    caller: Clinician,
    team: str | None = None,
    colour: str | None = None,
    measurement: str | None = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    charts.warm()  # the chart drawing processes started, if not yet: patient pages follow a worklist
    with predraw.serving():  # no chart drawn ahead meanwhile
        found = caller.access.worklist_page(
            caller.user, team=team or None, colour=colour or None, measurement=measurement or None, page=page
        )
        lang = language(request)
        cells = worklist_context(found, team, colour, measurement, lang, Formats(lang, _rt(request).local_zone))
        return render(request, "worklist.html", **cells)


@router.get("/patients/{patient_id}")
def patient(
    request: Request,
    patient_id: str,
    caller: Clinician,
    days: int | None = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    rt = _rt(request)
    chosen, first, last, period_start, period_end = period(rt, days, start, end)
    with predraw.serving():  # no chart drawn ahead meanwhile
        page = caller.access.patient_page(caller.user, patient_id, period_start, period_end)
        return render(request, "patient.html", **patient_context(page, request, chosen, first, last, rt))


@router.get("/patients/{patient_id}/report")
def report(
    request: Request,
    patient_id: str,
    caller: Clinician,
    days: int | None = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    """The period report: one printable page and a paste-ready text (default: the last 30 days)."""
    return _report(request, patient_id, caller, days, start, end)[0]


@router.get("/patients/{patient_id}/report.pdf")
def report_pdf(
    request: Request,
    patient_id: str,
    caller: Clinician,
    days: int | None = None,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    """The period report as a one-page PDF (the same read, decided and audited as the report page)."""
    page, first, last = _report(request, patient_id, caller, days, start, end)
    name = translations(language(request)).gettext("period-report")
    return Response(
        report_view.pdf(bytes(page.body).decode()),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}-{first.isoformat()}-{last.isoformat()}.pdf"'},
    )


def _report(
    request: Request, patient_id: str, caller: Caller, days: int | None, start: str | None, end: str | None
) -> tuple[Response, date, date]:
    rt = _rt(request)
    chosen, first, last, period_start, period_end = period(rt, days or (None if start or end else 30), start, end)
    page = caller.access.patient_page(caller.user, patient_id, period_start, period_end)
    context = patient_context(page, request, chosen, first, last, rt)
    _ = translations(language(request)).gettext
    summaries = summarise(page, _)
    fmt = Formats(language(request), rt.local_zone)
    text = paste_text(page, summaries, first, last, fmt, _, context["days_measured"])
    html = render(request, "report.html", summaries=summaries, paste=text, min_readings=MIN_READINGS, **context)
    return html, first, last


@router.post("/patients/{patient_id}/acknowledge")
def acknowledge(
    request: Request,
    patient_id: str,
    caller: ClinicianWrite,
    csrf: Annotated[str | None, Form()] = None,
    observation: Annotated[str | None, Form()] = None,
    all_green: Annotated[str | None, Form()] = None,
    note: Annotated[str | None, Form()] = None,
    days: Annotated[int | None, Form()] = None,
    start: Annotated[str | None, Form(alias="from")] = None,
    end: Annotated[str | None, Form(alias="to")] = None,
) -> Response:
    """Acknowledge one reading, or every green reading of the shown period (homediag.monitoring: a Task and its
    Provenance, audited); back to the patient page."""
    rt = _rt(request)
    sessions.check_csrf(request, rt, csrf)
    _chosen, _first, _last, period_start, period_end = period(rt, days, start, end)
    text = (note or "").strip() or None
    if all_green:
        caller.access.acknowledge(caller.user, patient_id, all_green=(period_start, period_end), note=text)
    else:
        caller.access.acknowledge(caller.user, patient_id, observation_ids=[observation or ""], note=text)
    query = f"from={start}&to={end}" if start or end else f"days={days or 14}"
    return _redirect(f"/app/patients/{patient_id}?{query}&acknowledged=1")


def period(
    rt: Runtime, days: int | None, start: str | None, end: str | None
) -> tuple[int | None, date, date, datetime, datetime]:
    """(the chosen number of days or None, first day, last day, and the period as instants) of a page's query."""
    zone = rt.local_zone
    today = rt.clock().astimezone(zone).date()
    if start or end:
        try:
            first = date.fromisoformat(start) if start else today - timedelta(days=29)
            last = date.fromisoformat(end) if end else today
        except ValueError:
            raise BadRequest("a period is given as from=YYYY-MM-DD and to=YYYY-MM-DD") from None
        if last < first or (last - first).days > 366:
            raise BadRequest("the period's end comes before its start, or the period is longer than a year")
        chosen = None
    else:
        chosen = days if days is not None and 1 <= days <= 366 else 14
        first, last = today - timedelta(days=chosen - 1), today
    period_start = datetime.combine(first, time.min, zone)
    period_end = datetime.combine(last + timedelta(days=1), time.min, zone)
    return chosen, first, last, period_start, period_end


@router.get("/patients/{patient_id}/thresholds")
def thresholds(request: Request, patient_id: str, caller: Clinician, saved: int | None = None) -> Response:
    settings = caller.access.monitoring_settings(caller.user, patient_id)
    page = caller.access.patient_page_header(caller.user, patient_id)
    return render(
        request,
        "thresholds.html",
        patient=page,
        saved=bool(saved),
        **thresholds_context(settings, settings["current"], None),
    )


@router.post("/patients/{patient_id}/thresholds/preview")
async def thresholds_preview(request: Request, patient_id: str, caller: Clinician) -> Response:
    """How many alerts the settings in the form would have raised in the last 30 days; stores nothing."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    sessions.check_csrf(request, _rt(request), form.get("csrf"))

    def work() -> Response:
        settings = caller.access.monitoring_settings(caller.user, patient_id)
        body = settings_from_form(form, settings["current"]["group"])
        preview = caller.access.preview_alerts(caller.user, patient_id, body)
        proposed = {**settings["current"], **body}
        if "thresholds" not in body:  # a new group: show its defaults
            proposed["thresholds"] = default_groups()[body["group"]].settings.to_json()["thresholds"]
        page = caller.access.patient_page_header(caller.user, patient_id)
        return render(
            request, "thresholds.html", patient=page, saved=False, **thresholds_context(settings, proposed, preview)
        )

    return await run_in_threadpool(work)


@router.post("/patients/{patient_id}/thresholds")
async def thresholds_save(request: Request, patient_id: str, caller: ClinicianWrite) -> Response:
    """A new version of the patient's thresholds (homediag.monitoring: versioned, who and when, audited)."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    sessions.check_csrf(request, _rt(request), form.get("csrf"))

    def work() -> None:
        settings = caller.access.monitoring_settings(caller.user, patient_id)
        body = settings_from_form(form, settings["current"]["group"], _rt(request).local_zone)
        try:
            based_on = int(form.get("version", ""))
        except ValueError:
            raise BadRequest("the form does not say which version it changes; reload the page") from None
        caller.access.record_monitoring_settings(caller.user, patient_id, {**body, "version": based_on}, None)

    await run_in_threadpool(work)
    return _redirect(f"/app/patients/{patient_id}/thresholds?saved=1")


# -- signing in and out --------------------------------------------------------------------------------
@router.get("/signin")
def signin(request: Request, _caller: Public, next: str | None = None, error: str | None = None) -> Response:
    return render(request, "signin.html", oidc=oidc_flow.configured(_rt(request)), next=local_path(next), error=error)


@router.get("/signin/oidc")
def signin_oidc(request: Request, _caller: Public, next: str | None = None) -> Response:
    rt = _rt(request)
    if not oidc_flow.configured(rt):
        raise NotFound("sign-in with the hospital's identity provider is not configured here")
    started = oidc_flow.start(rt, str(request.url_for("signin_callback")), local_path(next))
    response = RedirectResponse(started.url, status_code=303)
    sessions.set_cookie(response, rt, oidc_flow.STATE_COOKIE, started.cookie, max_age=oidc_flow.STATE_SECONDS)
    return response


@router.get("/signin/callback", name="signin_callback")
def signin_callback(request: Request, _caller: Public, code: str | None = None, state: str | None = None) -> Response:
    rt = _rt(request)
    principal, next_path = oidc_flow.finish(
        rt, str(request.url_for("signin_callback")), request.cookies.get(oidc_flow.STATE_COOKIE), code, state
    )
    response = _signed_in(rt, principal, local_path(next_path))
    response.delete_cookie(oidc_flow.STATE_COOKIE, path="/app")
    return response


@router.get("/signin/link/{token}")
def signin_link(request: Request, token: str, _caller: Public) -> Response:
    rt = _rt(request)
    return _signed_in(rt, sessions.redeem_signin_link(rt, token), "/app/")


def _signed_in(rt: Runtime, principal, next_path: str) -> Response:  # type: ignore[no-untyped-def]
    if principal.role not in sessions.WEB_ROLES:
        from homediag.errors import Forbidden

        raise Forbidden(f"the role '{principal.role}' has no pages in the web app yet")
    token = sessions.start_session(rt, principal)
    response = _redirect(next_path)
    sessions.set_cookie(response, rt, sessions.COOKIE, token)
    return response


@router.post("/signout")
def signout(request: Request, _caller: Public, csrf: Annotated[str | None, Form()] = None) -> Response:
    rt = _rt(request)
    sessions.check_csrf(request, rt, csrf)
    sessions.end_session(request, rt)
    response = _redirect("/app/signin?signedout=1")
    response.delete_cookie(sessions.COOKIE, path="/app")
    return response


@router.post("/language")
def set_language(
    request: Request,
    _caller: Public,
    lang: Annotated[str, Form()],
    csrf: Annotated[str | None, Form()] = None,
    next: Annotated[str | None, Form()] = None,
) -> Response:
    rt = _rt(request)
    sessions.check_csrf(request, rt, csrf)
    if lang not in LANGUAGES:
        raise BadRequest(f"the language is one of {', '.join(LANGUAGES)}")
    response = _redirect(local_path(next))
    sessions.set_cookie(response, rt, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
    return response


@router.get("/static/{name}")
def static(name: str, _caller: Public) -> Response:
    """The app's own assets, from this installed package (no other host is ever asked)."""
    if name not in STATIC:
        raise NotFound(f"no asset {name!r}")
    body = resources.files("homediag.web").joinpath("static", name).read_bytes()
    return Response(body, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream")
