"""The web app over HTTP (the real ASGI app, SQLite and PostgreSQL): sign-in and sessions, CSRF, security
headers, the worklist and patient page reading through the access layer, languages."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import WebPilot, sign_in, web, web_pilot  # noqa: F401 - fixtures

from homediag.clock import utcnow
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.web.sessions import issue_signin_link


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "a form without a CSRF token"
    return found.group(1)


def test_pages_without_a_session_send_the_browser_to_sign_in(web: TestClient) -> None:
    response = web.get("/app/worklist?colour=red", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/app/signin?next=/app/worklist%3Fcolour%3Dred"
    page = web.get("/app/signin")
    assert page.status_code == 200
    assert "Log ind" in page.text  # Danish by default


def test_a_bearer_token_does_not_open_web_pages(web: TestClient, tokens) -> None:  # type: ignore[no-untyped-def]
    response = web.get("/app/worklist", headers=tokens.auth("clinician"), follow_redirects=False)
    assert response.status_code == 303


def test_every_page_carries_a_strict_content_security_policy_and_no_inline_script_or_style(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    patient = next(iter(web_pilot.shown))
    for path in ("/app/signin", "/app/worklist", f"/app/patients/{patient}?days=30"):
        response = web.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "<script" not in response.text
        assert not re.search(r"<style|\sstyle=", response.text), path
        assert "http://" not in response.text.replace("http://www.w3.org/", "")  # no other host is referenced
    css = web.get("/app/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert '<link rel="icon" href="/app/static/favicon.svg"' in response.text  # not /favicon.ico: a 404 a page
    icon = web.get("/app/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert web.get("/app/static/..%2Fsessions.py").status_code == 404


def test_a_sign_in_link_works_once_and_not_after_it_expired(web: TestClient, runtime: Runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    link = issue_signin_link(runtime, tokens.ids["clinician"])
    first = web.get(link, follow_redirects=False)
    assert first.status_code == 303
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("samesite", "SameSite")
    web.cookies.clear()
    again = web.get(link, follow_redirects=False)
    assert again.status_code == 401
    assert "already used or expired" in again.text
    expired = issue_signin_link(runtime, tokens.ids["clinician"])
    with runtime.sessions.begin() as session:
        for row in session.execute(select(m.WebSigninLink)).scalars():
            row.expires_at = utcnow() - timedelta(seconds=1)
    assert web.get(expired, follow_redirects=False).status_code == 401
    assert web.get("/app/worklist", follow_redirects=False).status_code == 303


def test_cookies_are_secure_unless_the_deployment_turns_it_off(web: TestClient, runtime: Runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    runtime.settings.web_secure_cookies = True
    response = web.get(issue_signin_link(runtime, tokens.ids["clinician"]), follow_redirects=False)
    assert "Secure" in response.headers["set-cookie"]


def test_sign_out_needs_the_csrf_token_and_ends_the_session(web: TestClient, runtime: Runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    page = web.get("/app/worklist")
    token = _csrf(page.text)
    refused = web.post("/app/signout", data={"csrf": "forged"}, follow_redirects=False)
    assert refused.status_code == 403
    assert web.get("/app/worklist", follow_redirects=False).status_code == 200  # still signed in
    cookie = web.cookies["hd_session"]
    done = web.post("/app/signout", data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    web.cookies.set("hd_session", cookie, path="/app")  # the old cookie, replayed
    assert web.get("/app/worklist", follow_redirects=False).status_code == 303


def test_a_session_ends_after_the_idle_timeout(web: TestClient, runtime: Runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    assert web.get("/app/worklist", follow_redirects=False).status_code == 200
    with runtime.sessions.begin() as session:
        for row in session.execute(select(m.WebSession)).scalars():
            row.last_seen = utcnow() - timedelta(minutes=runtime.settings.web_idle_minutes + 1)
    assert web.get("/app/worklist", follow_redirects=False).status_code == 303


def test_the_worklist_shows_exactly_the_consented_patients_of_my_teams(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    page = web.get("/app/worklist")
    assert page.status_code == 200
    listed = set(re.findall(r'<tr data-patient="([^"]+)"', page.text))
    assert listed == set(web_pilot.shown)
    for name in web_pilot.shown.values():
        assert name in page.text
    for name in web_pilot.hidden.values():
        assert name not in page.text
    assert "10 af 14 dage" in page.text  # adherence: readings on the last ten days
    with runtime.sessions() as session:
        audited = session.execute(
            select(m.AuditEvent.patient_key).where(
                m.AuditEvent.entity == "worklist", m.AuditEvent.action == "re-identify"
            )
        ).scalars()
        keys = set(audited)
        shown_keys = set(
            session.execute(select(m.Patient.patient_key).where(m.Patient.id.in_(list(web_pilot.shown)))).scalars()
        )
    assert keys == shown_keys


def test_the_worklist_filters_by_team_and_measurement(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    mine = web.get(f"/app/worklist?team={tokens.team}")
    assert set(re.findall(r'<tr data-patient="([^"]+)"', mine.text)) == set(web_pilot.shown)
    assert re.findall(r'<tr data-patient="', web.get("/app/worklist?team=team-not-mine").text) == []
    assert re.findall(r'<tr data-patient="', web.get("/app/worklist?measurement=spo2").text) == []
    bp = web.get("/app/worklist?measurement=blood-pressure")
    assert set(re.findall(r'<tr data-patient="([^"]+)"', bp.text)) == set(web_pilot.shown)


def test_the_patient_page_of_a_patient_i_may_not_see_is_404_and_audited(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    for pid, name in web_pilot.hidden.items():
        response = web.get(f"/app/patients/{pid}")
        assert response.status_code == 404
        assert name not in response.text
    with runtime.sessions() as session:
        denies = session.execute(
            select(m.AuditEvent.detail).where(m.AuditEvent.entity == "patient-page", m.AuditEvent.outcome == "deny")
        ).scalars()
        assert len(list(denies)) == len(web_pilot.hidden)


def test_the_patient_page_shows_readings_flags_and_why_an_upload_was_refused(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    pid = web_pilot.refused_for
    page = web.get(f"/app/patients/{pid}?days=30")
    assert page.status_code == 200
    assert web_pilot.shown[pid] in page.text
    assert page.text.count('data-series="systolic"') == web_pilot.readings[pid]
    assert "Uregelmæssig puls" in page.text  # the irregular-pulse bit the cuff set
    why = page.text[page.text.index('id="why-no-data"') :]
    assert "Måleren sendte data, der ikke kunne læses" in why  # the plain reason
    assert "payload ends after 5 bytes" in why  # the technical one, for the vendor
    assert "Syntetisk Medico BPM-1" in page.text and "test gateway" in page.text
    week = web.get(f"/app/patients/{pid}?days=14")
    assert week.text.count('data-series="systolic"') == web_pilot.readings[pid]  # ten days of readings
    chosen = web.get(f"/app/patients/{pid}?from=2020-01-01&to=2020-01-31")
    assert chosen.status_code == 200 and 'data-series="systolic"' not in chosen.text
    assert web.get(f"/app/patients/{pid}?from=2020-02-01&to=2020-01-01").status_code == 400


def test_the_language_switch_needs_its_token_and_switches_to_english(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    page = web.get("/app/worklist")
    assert "Arbejdsliste" in page.text and 'lang="da"' in page.text
    assert web.post("/app/language", data={"lang": "en", "next": "/app/worklist"}).status_code == 403
    switched = web.post("/app/language", data={"lang": "en", "csrf": _csrf(page.text), "next": "/app/worklist"})
    assert switched.status_code == 200
    assert "Worklist" in switched.text and 'lang="en"' in switched.text and "Arbejdsliste" not in switched.text
    away = web.post("/app/language", data={"lang": "da", "csrf": _csrf(switched.text), "next": "https://evil.example/"})
    assert away.url.path == "/app/worklist"  # the start page, never another host


def test_an_admin_signs_in_but_has_no_worklist(web: TestClient, runtime: Runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["admin"])
    assert "Administration" in web.get("/app/").text
    assert web.get("/app/worklist").status_code == 403
    assert web.get("/app/patients/anything").status_code == 403


def test_a_threshold_change_is_previewed_then_saved_as_a_version_and_re_triages_the_readings(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    sign_in(web, runtime, tokens.ids["clinician"])
    pid = web_pilot.refused_for
    page = web.get(f"/app/patients/{pid}/thresholds")
    assert page.status_code == 200 and web_pilot.shown[pid] in page.text
    assert 'name="systolic.yellow_high" value="135"' in page.text  # the general group's default
    form = {
        "csrf": _csrf(page.text),
        "version": "0",
        "group": "general",
        "systolic.yellow_high": "50",  # every systolic value crosses it
        "systolic.red_high": "250",
        "pulse.yellow_low": "1",
        "pulse.yellow_high": "299",
        "valid_from": (date.today() - timedelta(days=40)).isoformat(),
    }
    preview = web.post(f"/app/patients/{pid}/thresholds/preview", data=form)
    assert preview.status_code == 200
    alerts = re.search(r'id="preview-alerts">[^<]*?(\d+) alarm', preview.text)
    assert alerts and int(alerts.group(1)) == web_pilot.readings[pid]  # one per blood-pressure reading
    assert 'name="systolic.yellow_high" value="50"' in preview.text  # the proposal stays in the form
    before = web.get(f"/app/patients/{pid}?days=30").text
    assert before.count('point triage-yellow" data-series="systolic"') < web_pilot.readings[pid]
    saved = web.post(f"/app/patients/{pid}/thresholds", data=form)
    assert saved.status_code == 200 and "version 1" in saved.text
    after = web.get(f"/app/patients/{pid}?days=30").text
    assert after.count('point triage-yellow" data-series="systolic"') == web_pilot.readings[pid]
    stale = web.post(f"/app/patients/{pid}/thresholds", data=form)  # based on version 0, now 1
    assert stale.status_code == 412


def test_the_period_report_counts_the_readings_and_gives_paste_ready_text(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    pid = web_pilot.refused_for
    report = web.get(f"/app/patients/{pid}/report")
    assert report.status_code == 200
    row = re.search(r'<tr data-measurement="blood-pressure">(.*?)</tr>', report.text, re.S)
    assert row and f"<td>{web_pilot.readings[pid]} (10 dage)</td>" in row.group(1)
    assert "<td>ja</td>" in row.group(1)  # 20 readings on 10 days: enough to judge
    paste = re.search(r'<textarea id="paste" readonly rows="\d+">(.*?)</textarea>', report.text, re.S)
    assert paste is not None
    text = paste.group(1)
    assert text.startswith("Hjemmemonitorering ")
    assert f"Blodtryk: {web_pilot.readings[pid]} målinger, systolisk gennemsnit" in text
    assert "<" not in text and "@media print" in web.get("/app/static/app.css").text
    short = web.get(f"/app/patients/{pid}/report?days=3")  # two days with readings: too few to judge
    assert "for få målinger til at vurdere" in short.text
    other = next(iter(web_pilot.hidden))
    assert web.get(f"/app/patients/{other}/report").status_code == 404
