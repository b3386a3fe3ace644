"""The administration pages over HTTP (the real ASGI app, SQLite and PostgreSQL): each form takes effect
through the same service functions as the API (checked through the API and the clinician's worklist),
CSRF refusal, a clinician refused, and a CPR number never shown back."""

from __future__ import annotations

import re
from datetime import date, timedelta

from fastapi.testclient import TestClient
from web_support import sign_in, web  # noqa: F401 - fixtures

from homediag.runtime import Runtime
from homediag.synthetic import synthetic_patients


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "a form without a CSRF token"
    return found.group(1)


def _admin(web: TestClient, runtime: Runtime, tokens) -> str:  # type: ignore[no-untyped-def]
    """Sign the admin in; the session's CSRF token."""
    sign_in(web, runtime, tokens.ids["admin"])
    page = web.get("/app/admin/patients")
    assert page.status_code == 200
    return _csrf(page.text)


def _enrol(web: TestClient, csrf: str, cpr: str, given: str = "Test", family: str = "Testesen") -> str:
    response = web.post(
        "/app/admin/patients", data={"csrf": csrf, "cpr": cpr, "given": given, "family": family}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/app/admin/patients/([0-9a-f]+)\?enrolled=new", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


def _clinician(web: TestClient, runtime: Runtime, tokens) -> TestClient:  # type: ignore[no-untyped-def]
    """A second browser: the test clinician signed in."""
    other = TestClient(web.app)
    sign_in(other, runtime, tokens.ids["clinician"])
    return other


def _worklist(client: TestClient) -> set[str]:
    page = client.get("/app/worklist")
    assert page.status_code == 200
    return set(re.findall(r'<tr data-patient="([^"]+)"', page.text))


def test_a_clinician_gets_403_on_every_admin_page_and_form(web: TestClient, runtime: Runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    csrf = _csrf(web.get("/app/worklist").text)
    for path in ("/app/admin/patients", "/app/admin/care-teams", "/app/admin/gateways", "/app/admin/users"):
        assert web.get(path).status_code == 403, path
    person = synthetic_patients(1, seed=41)[0]
    refused = web.post("/app/admin/patients", data={"csrf": csrf, "cpr": person.cpr})
    assert refused.status_code == 403
    assert person.cpr not in refused.text
    assert web.post("/app/admin/users", data={"csrf": csrf, "role": "admin", "name": "x"}).status_code == 403
    users = web.get("/admin/users", headers=tokens.auth("admin")).json()
    assert [u for u in users if u["name"] == "x"] == []


def test_forms_without_the_sessions_csrf_token_change_nothing(web: TestClient, runtime: Runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    _admin(web, runtime, tokens)
    person = synthetic_patients(1, seed=42)[0]
    for data in ({"cpr": person.cpr}, {"cpr": person.cpr, "csrf": "forged"}):
        refused = web.post("/app/admin/patients", data=data)
        assert refused.status_code == 403
        assert person.cpr not in refused.text
    assert 'data-patient="' not in web.get("/app/admin/patients").text  # nobody enrolled
    assert web.post("/app/admin/care-teams", data={"name": "Forfalsket"}).status_code == 403
    teams = web.get("/admin/care-teams", headers=tokens.auth("admin")).json()
    assert "Forfalsket" not in [t["name"] for t in teams]


def test_enrol_consent_team_and_withdraw_take_effect_on_the_clinicians_worklist(
    web: TestClient, runtime: Runtime, tokens
) -> None:  # type: ignore[no-untyped-def]
    csrf = _admin(web, runtime, tokens)
    person = synthetic_patients(1, seed=43)[0]
    pid = _enrol(web, csrf, person.cpr, person.given, person.family)
    page = web.get(f"/app/admin/patients/{pid}?enrolled=new")
    assert f"Patient/{pid}" in page.text and "er tilmeldt" in page.text
    digits = person.cpr.replace("-", "")
    for text in (page.text, web.get("/app/admin/patients").text):
        assert digits not in text and person.cpr not in text and person.family not in text  # no identity shown
    assert f'data-patient="{pid}"' in web.get("/app/admin/patients").text
    again = web.post("/app/admin/patients", data={"csrf": csrf, "cpr": person.cpr})
    assert again.status_code == 200 and "allerede tilmeldt" in again.text and f"Patient/{pid}" in again.text
    assert web.get(f"/fhir/Patient/{pid}", headers=tokens.auth("admin")).status_code == 200  # as POST /fhir/Patient

    # a consent for treatment; the clinician's worklist does not show the patient until it is on their team
    start = (date.today() - timedelta(days=20)).isoformat()
    recorded = web.post(
        f"/app/admin/patients/{pid}/consents",
        data={"csrf": csrf, "purpose": ["TREAT", "HRESCH"], "start": start, "data_from": start},
    )
    assert recorded.status_code == 200 and "aktiv" in recorded.text and "TREAT, HRESCH" in recorded.text
    consents = web.get(f"/fhir/Consent?patient=Patient/{pid}", headers=tokens.auth("admin")).json()["entry"]
    assert len(consents) == 1
    stored = consents[0]["resource"]
    assert stored["status"] == "active" and stored["provision"]["dataPeriod"] == {"start": start}
    assert stored["provision"]["period"] == {"start": start}
    clinician = _clinician(web, runtime, tokens)
    assert pid not in _worklist(clinician)

    # a new care team with the clinician and the patient
    assert web.post("/app/admin/care-teams", data={"csrf": csrf, "name": "Medicinsk ambulatorium"}).status_code == 200
    team = next(
        t
        for t in web.get("/admin/care-teams", headers=tokens.auth("admin")).json()
        if t["name"] == "Medicinsk ambulatorium"
    )
    member = web.post(
        f"/app/admin/care-teams/{team['id']}/members", data={"csrf": csrf, "user": tokens.ids["clinician"]}
    )
    assert member.status_code == 200 and tokens.ids["clinician"] in member.text
    added = web.post(f"/app/admin/care-teams/{team['id']}/patients", data={"csrf": csrf, "patient": pid})
    assert added.status_code == 200
    assert pid in _worklist(clinician)

    # withdrawing the consent takes the patient off the worklist; the history keeps both versions
    consent_id = stored["id"]
    page = web.get(f"/app/admin/patients/{pid}")
    withdrawn = web.post(
        f"/app/admin/patients/{pid}/consents/{consent_id}/withdraw", data={"csrf": _csrf(page.text), "version": "1"}
    )
    assert withdrawn.status_code == 200
    assert pid not in _worklist(clinician)
    history = re.search(rf'data-consent="{consent_id}">(.*?)</section>', withdrawn.text, re.S)
    assert history and "trukket tilbage" in history.group(1) and "version 2" in history.group(1)
    assert "version 1" in history.group(1)
    stale = web.post(f"/app/admin/patients/{pid}/consents/{consent_id}/withdraw", data={"csrf": csrf, "version": "1"})
    assert stale.status_code == 400  # the page was out of date: nothing recorded
    versions = web.get(f"/fhir/Consent/{consent_id}/_history", headers=tokens.auth("admin")).json()
    assert versions["total"] == 2

    # taking the clinician off the team: the patient (consented again) stays off the worklist
    web.post(f"/app/admin/patients/{pid}/consents", data={"csrf": csrf, "purpose": "TREAT"})
    assert pid in _worklist(clinician)
    removed = web.post(
        f"/app/admin/care-teams/{team['id']}/members",
        data={"csrf": csrf, "user": tokens.ids["clinician"], "remove": "1"},
    )
    assert removed.status_code == 200
    assert pid not in _worklist(clinician)


def test_a_bad_cpr_or_consent_form_says_what_is_wrong_and_never_repeats_the_number(
    web: TestClient, runtime: Runtime, tokens
) -> None:  # type: ignore[no-untyped-def]
    csrf = _admin(web, runtime, tokens)
    for bad in ("320199-1234", "12345"):
        refused = web.post("/app/admin/patients", data={"csrf": csrf, "cpr": bad, "family": "Fejlsen"})
        assert refused.status_code in (400, 422)
        assert "CPR" in refused.text
        assert bad not in refused.text and bad.replace("-", "") not in refused.text
    assert 'data-patient="' not in web.get("/app/admin/patients").text
    pid = _enrol(web, csrf, synthetic_patients(1, seed=44)[0].cpr)
    no_purpose = web.post(f"/app/admin/patients/{pid}/consents", data={"csrf": csrf})
    assert no_purpose.status_code == 400 and "TREAT" in no_purpose.text
    bad_date = web.post(
        f"/app/admin/patients/{pid}/consents", data={"csrf": csrf, "purpose": "TREAT", "end": "31-12-2026"}
    )
    assert bad_date.status_code == 400 and "valid to" in bad_date.text
    assert web.get(f"/fhir/Consent?patient=Patient/{pid}", headers=tokens.auth("admin")).json().get("entry", []) == []


def test_gateway_patients_and_devices_are_changed_through_the_pages(web: TestClient, runtime: Runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    csrf = _admin(web, runtime, tokens)
    pid = _enrol(web, csrf, synthetic_patients(1, seed=45)[0].cpr)
    gateway = tokens.ids["gateway"]

    def state() -> dict[str, list[str]]:
        found = web.get("/admin/gateways", headers=tokens.auth("admin")).json()
        return next(g for g in found if g["id"] == gateway)

    assert web.post(f"/app/admin/gateways/{gateway}/patients", data={"csrf": csrf, "patient": pid}).status_code == 200
    assert pid in state()["patients"]
    page = web.post(f"/app/admin/gateways/{gateway}/devices", data={"csrf": csrf, "device": "SN-TEST-0001"})
    assert page.status_code == 200 and "SN-TEST-0001" in page.text
    assert "SN-TEST-0001" in state()["devices"]
    web.post(f"/app/admin/gateways/{gateway}/devices", data={"csrf": csrf, "device": "SN-TEST-0001", "remove": "1"})
    web.post(f"/app/admin/gateways/{gateway}/patients", data={"csrf": csrf, "patient": pid, "remove": "1"})
    assert "SN-TEST-0001" not in state()["devices"] and pid not in state()["patients"]
    unknown = web.post(f"/app/admin/gateways/{gateway}/patients", data={"csrf": csrf, "patient": "nobody"})
    assert unknown.status_code == 404


def test_a_created_users_token_is_shown_once_and_works_until_revoked(web: TestClient, runtime: Runtime, tokens) -> None:  # type: ignore[no-untyped-def]
    csrf = _admin(web, runtime, tokens)
    created = web.post("/app/admin/users", data={"csrf": csrf, "role": "admin", "name": "Anden Administrator"})
    assert created.status_code == 200
    token = re.search(r"<code class=\"token\" data-token>([^<]+)</code>", created.text)
    user_id = re.search(r'data-created-user="([^"]+)"', created.text)
    assert token and user_id
    bearer = {"Authorization": f"Bearer {token.group(1)}"}
    assert web.get("/admin/users", headers=bearer).status_code == 200
    listing = web.get("/app/admin/users")
    assert f'data-user="{user_id.group(1)}"' in listing.text and token.group(1) not in listing.text
    bad = web.post("/app/admin/users", data={"csrf": csrf, "role": "superuser", "name": "X"})
    assert bad.status_code == 400 and "clinician" in bad.text
    revoked = web.post(f"/app/admin/users/{user_id.group(1)}/revoke", data={"csrf": csrf})
    assert revoked.status_code == 200
    assert web.get("/admin/users", headers=bearer).status_code == 401
    row = re.search(rf'data-user="{user_id.group(1)}">(.*?)</tr>', revoked.text, re.S)
    assert row and "tilbagekaldt" in row.group(1)
