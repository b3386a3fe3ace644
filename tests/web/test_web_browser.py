"""The web app in a real headless Chromium (Playwright driving Debian's chromium) against the live server:
sign-in through the local OpenID Connect provider and through a demo link, the worklist, the chart's
points, the language switch, no CSP violation, and axe-core finding no serious or critical violation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import axe_source, close_shared_chromium, serious_violations, shared_chromium
from oidc_issuer import Provider, configure, running_provider
from web_support import WebPilot, web, web_pilot  # noqa: F401 - fixtures

from homediag import care
from homediag.runtime import Runtime
from homediag.web.sessions import issue_signin_link

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]
ADMIN = care.Principal("test-admin", "test admin", "admin", None)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    yield shared_chromium()  # shared with the other browser test modules
    close_shared_chromium()


@pytest.fixture(scope="session")
def axe() -> str:
    return axe_source()


@pytest.fixture
def provider(runtime: Runtime, tokens) -> Iterator[Provider]:  # type: ignore[no-untyped-def]
    with running_provider() as found:
        configure(runtime, found)
        with runtime.sessions.begin() as session:
            care.add_member(session, runtime.keys, ADMIN, tokens.team, f"oidc:{found.person['sub']}")
        yield found


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.csp_errors = []  # type: ignore[attr-defined]
    page.on(
        "console",
        lambda msg: page.csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield page
    context.close()


def _listed(page: Any) -> set[str]:
    return set(page.locator("tr[data-patient]").evaluate_all("rows => rows.map(r => r.dataset.patient)"))


def test_sign_in_through_the_identity_provider_opens_my_worklist(
    page: Any, live_server: str, web_pilot: WebPilot, provider: Provider
) -> None:
    page.goto(f"{live_server}/app/worklist")
    assert page.url.startswith(f"{live_server}/app/signin")
    page.get_by_role("link", name="Log ind med hospitalets login").click()
    page.wait_for_url(f"{live_server}/app/worklist")
    assert page.get_by_role("heading", name="Arbejdsliste").is_visible()
    assert page.get_by_text("Sygeplejerske Syntetisk").is_visible()
    assert _listed(page) == set(web_pilot.shown)
    page.get_by_role("button", name="Log ud").click()
    page.wait_for_url(f"{live_server}/app/signin*")
    page.goto(f"{live_server}/app/worklist")
    assert "/app/signin" in page.url
    assert page.csp_errors == []


def test_a_demo_link_signs_in_and_the_worklist_holds_exactly_the_consented_patients_of_my_teams(
    page: Any, live_server: str, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server + issue_signin_link(runtime, tokens.ids["clinician"]))
    page.wait_for_url(f"{live_server}/app/worklist")
    assert _listed(page) == set(web_pilot.shown)
    text = page.locator("table.worklist").inner_text()
    for name in web_pilot.hidden.values():
        assert name not in text
    page.get_by_label("Måling").select_option("blood-pressure")
    page.get_by_role("button", name="Vis").click()
    assert _listed(page) == set(web_pilot.shown)
    assert page.csp_errors == []


def test_the_chart_shows_one_point_per_reading_in_range_and_each_point_tells_its_reading(
    page: Any, live_server: str, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server + issue_signin_link(runtime, tokens.ids["clinician"]))
    patient = web_pilot.refused_for
    page.goto(f"{live_server}/app/patients/{patient}?days=30")
    chart = page.locator("[data-measurement='blood-pressure'] svg.trend")
    try:  # the page is drawn on the server (matplotlib): wait for it rather than look once
        chart.wait_for(state="visible", timeout=15_000)
    except Exception:  # say what the page showed instead (a full-suite run once found no chart here)
        shown = page.locator("main").inner_text()[:2000]
        html = page.locator("main").inner_html()[:3000]  # the markup too: a full-suite run once showed only the links
        raise AssertionError(f"no blood-pressure chart at {page.url}: {shown}\n--- markup ---\n{html}") from None
    systolic = chart.locator(".point[data-series='systolic']")
    assert systolic.count() == web_pilot.readings[patient]
    assert chart.locator(".point[data-series='diastolic']").count() == web_pilot.readings[patient]
    tip = systolic.first.locator("title").text_content() or ""
    assert "Systolisk" in tip and "mmHg" in tip and "Syntetisk Medico BPM-1" in tip and "modtaget" in tip
    box = chart.bounding_box()
    assert box is not None and box["width"] > 600  # drawn, with its styles (no CSP-blocked style)
    colours = {"triage-green": "rgb(27, 94, 32)", "triage-yellow": "rgb(138, 97, 0)", "triage-red": "rgb(183, 28, 28)"}
    for point in systolic.all()[:10]:  # coloured by triage, from presentation attributes (no CSP-blocked style)
        kind = next(c for c in (point.get_attribute("class") or "").split() if c.startswith("triage-"))
        assert point.evaluate("e => getComputedStyle(e).fill") == colours[kind]
    page.get_by_text("Tabel over målingerne").first.click()
    rows = page.locator("[data-measurement='blood-pressure'] table tbody tr")
    assert rows.count() == web_pilot.readings[patient]
    page.get_by_label("Fra", exact=True).fill("2020-01-01")
    page.get_by_label("Til", exact=True).fill("2020-01-31")
    page.get_by_role("button", name="Vis").click()
    assert page.locator("svg.trend .point").count() == 0
    assert page.get_by_text("Ingen målinger i perioden.").is_visible()
    assert page.csp_errors == []


def test_acknowledging_a_reading_and_all_green_ones_survives_a_reload(
    page: Any, live_server: str, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server + issue_signin_link(runtime, tokens.ids["clinician"]))
    page.goto(f"{live_server}/app/patients/{web_pilot.refused_for}?days=30")
    block = page.locator("[data-measurement='blood-pressure']")
    block.get_by_text("Tabel over målingerne").click()
    first = block.locator("tbody tr").first
    reading = first.get_attribute("data-reading")
    first.get_by_role("button", name="Kvittér").click()
    page.wait_for_url("**acknowledged=1")
    page.reload()
    block = page.locator("[data-measurement='blood-pressure']")
    block.get_by_text("Tabel over målingerne").click()
    row = block.locator(f"tbody tr[data-reading='{reading}']")
    assert row.get_by_text("Kvitteret").is_visible()
    page.get_by_role("button", name="Kvittér alle grønne").click()
    page.wait_for_url("**acknowledged=1")
    page.reload()
    greens = page.locator("[data-measurement='blood-pressure'] tbody tr:has(.badge.triage-green)")
    assert greens.count() > 0
    assert greens.locator("button").count() == 0  # every green one acknowledged
    page.goto(f"{live_server}/app/worklist")
    reviewed = page.locator(f"tr[data-patient='{web_pilot.refused_for}']").inner_text()
    assert "test clinician" in reviewed  # last reviewed: by whom (and when)


def test_the_language_switch_turns_the_pages_english_and_back(
    page: Any, live_server: str, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server + issue_signin_link(runtime, tokens.ids["clinician"]))
    assert page.locator("html").get_attribute("lang") == "da"
    page.get_by_role("button", name="English").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Worklist").is_visible()
    assert page.locator("html").get_attribute("lang") == "en"
    page.goto(f"{live_server}/app/patients/{web_pilot.refused_for}")
    assert page.get_by_role("heading", name="Why no data?").is_visible()
    page.get_by_role("button", name="Dansk").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Hvorfor ingen data?").is_visible()


def test_axe_finds_no_serious_or_critical_violation_on_any_screen(
    page: Any, live_server: str, runtime: Runtime, tokens, web_pilot: WebPilot, axe: str
) -> None:  # type: ignore[no-untyped-def]
    page.set_content('<html lang="en"><body><img src="/x.png"></body></html>')
    assert any(v.startswith("image-alt") for v in serious_violations(page, axe))  # the checker does check
    screens = {"sign-in": "/app/signin"}
    found: dict[str, list[str]] = {}
    for name, path in screens.items():
        page.goto(live_server + path)
        found[name] = serious_violations(page, axe)
    page.goto(live_server + issue_signin_link(runtime, tokens.ids["clinician"]))
    clinician_screens = {
        "worklist": "/app/worklist",
        "patient": f"/app/patients/{web_pilot.refused_for}?days=30",
        "patient 90 days": f"/app/patients/{web_pilot.refused_for}?days=90",
        "not found": "/app/patients/no-such-patient",
        "thresholds": f"/app/patients/{web_pilot.refused_for}/thresholds",
        "period report": f"/app/patients/{web_pilot.refused_for}/report",
    }
    for name, path in clinician_screens.items():
        page.goto(live_server + path)
        found[name] = serious_violations(page, axe)
    page.get_by_role("button", name="English").click()
    page.wait_for_load_state()
    found["worklist (English)"] = serious_violations(page, axe)
    page.context.clear_cookies()
    page.goto(live_server + issue_signin_link(runtime, tokens.ids["admin"]))
    found["admin"] = serious_violations(page, axe)
    assert {k: v for k, v in found.items() if v} == {}
