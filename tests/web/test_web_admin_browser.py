"""The administration pages in a real headless Chromium against the live server: an admin enrols a patient
and records a consent through the pages, and axe-core finds no serious or critical violation on any
administration screen."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from browser_support import serious_violations
from test_web_browser import axe, chromium, page  # noqa: F401 - fixtures

from homediag.runtime import Runtime
from homediag.synthetic import synthetic_patients
from homediag.web.sessions import issue_signin_link

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


def test_an_admin_enrols_a_patient_and_records_a_consent_through_the_pages(
    page: Any,  # noqa: F811
    live_server: str,
    runtime: Runtime,
    tokens,  # type: ignore[no-untyped-def]
    axe: str,  # noqa: F811
) -> None:
    runtime.settings.web_secure_cookies = False
    person = synthetic_patients(1, seed=51)[0]
    page.goto(live_server + issue_signin_link(runtime, tokens.ids["admin"]))
    page.wait_for_url(f"{live_server}/app/admin/patients")
    found = {"patients (empty)": serious_violations(page, axe)}
    page.get_by_label("CPR-nummer").fill(person.cpr)
    page.get_by_label("Fornavn").fill(person.given)
    page.get_by_label("Efternavn").fill(person.family)
    page.get_by_role("button", name="Tilmeld", exact=True).click()
    page.wait_for_url("**/app/admin/patients/*?enrolled=new")
    patient_id = page.url.split("/app/admin/patients/")[1].split("?")[0]
    assert page.get_by_role("status").inner_text() == f"Patienten er tilmeldt som Patient/{patient_id}."
    assert person.cpr.replace("-", "") not in page.content() and person.family not in page.content()
    found["patient (no consent)"] = serious_violations(page, axe)

    start = date.today() - timedelta(days=10)
    page.get_by_label("Sundhedsforskning (evaluering) (HRESCH)").check()
    page.get_by_label("Gyldigt fra").fill(start.isoformat())
    page.get_by_label("Data fra").fill(start.isoformat())
    page.get_by_role("button", name="Registrér samtykke").click()
    page.wait_for_load_state()
    consent = page.locator("section[data-consent]")
    assert consent.count() == 1
    assert "aktiv" in consent.get_by_role("heading", level=3).inner_text()
    assert "TREAT, HRESCH" in consent.inner_text()
    assert consent.locator("ol.history li").count() == 1
    found["patient (consent)"] = serious_violations(page, axe)

    page.goto(f"{live_server}/app/admin/patients")
    assert page.locator(f"tr[data-patient='{patient_id}']").inner_text().strip().endswith("aktivt")
    found["patients"] = serious_violations(page, axe)
    for name in ("care-teams", "gateways", "users"):
        page.goto(f"{live_server}/app/admin/{name}")
        found[name] = serious_violations(page, axe)
    page.get_by_label("Navn", exact=True).fill("Ny gateway")
    page.get_by_label("Rolle").select_option("gateway")
    page.get_by_role("button", name="Opret bruger").click()
    page.wait_for_load_state()
    assert page.locator("[data-token]").inner_text().strip() != ""
    found["users (token shown)"] = serious_violations(page, axe)
    page.get_by_role("button", name="English").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Users", exact=True).is_visible()
    assert page.locator("[data-token]").count() == 0  # the token is gone once the page is left
    found["users (English)"] = serious_violations(page, axe)
    assert {k: v for k, v in found.items() if v} == {}
    assert page.csp_errors == []
