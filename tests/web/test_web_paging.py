"""The worklist in pages: the same severity order across pages, the filters kept by the page links, and only the
patients of the page shown re-identified (audited). Over HTTP, the real ASGI app, SQLite and PostgreSQL; one
patient per page here (the pilot has two on my team), 50 in the app."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import COPENHAGEN, WebPilot, sign_in, web, web_pilot  # noqa: F401 - fixtures

from homediag.access import worklist
from homediag.adapters.devices import DeviceTime, blood_pressure
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.synthetic import envelope, synthetic_patients


def _listed(html: str) -> list[str]:
    return re.findall(r'<tr data-patient="([^"]+)"', html)


def _links(html: str) -> list[str]:
    nav = re.search(r'<nav class="pages".*?</nav>', html, re.S)
    return [href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)"', nav.group(0))] if nav else []


@pytest.fixture
def one_per_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worklist, "PAGE_SIZE", 1)


def test_the_worklist_pages_keep_the_severity_order_and_the_filters(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, one_per_page: None
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    first, second = list(web_pilot.shown)
    # the second patient (by the pilot's order) gets a red reading: most severe, so first on page 1
    person = synthetic_patients(5, seed=12)[1]
    taken = datetime.now(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(hours=1)
    stamp = DeviceTime(taken.year, taken.month, taken.day, taken.hour, taken.minute, 0)
    high = blood_pressure.encode((Decimal(204), Decimal(121), Decimal(149)), timestamp=stamp, pulse_rate=70)
    sent = pilot.client.post(
        "/ingest", json=[envelope(person, high, taken + timedelta(minutes=1))], headers=pilot.tokens.auth("gateway")
    )
    assert sent.status_code == 200, sent.text

    page1 = web.get("/app/worklist")
    assert page1.status_code == 200
    assert _listed(page1.text) == [second]
    assert "triage-red" in page1.text
    assert "2 patienter, side 1 af 2" in page1.text
    page2 = web.get("/app/worklist?page=2")
    assert _listed(page2.text) == [first]
    assert _listed(web.get("/app/worklist?page=99").text) == [first]  # beyond the last: the last
    assert web.get("/app/worklist?page=0").status_code == 400  # a clear error page, not a page of nothing

    with runtime.sessions() as session:
        keys = dict(session.execute(select(m.Patient.id, m.Patient.patient_key)).all())
        audited = (
            session.execute(
                select(m.AuditEvent.patient_key)
                .where(m.AuditEvent.entity == "worklist", m.AuditEvent.action == "re-identify")
                .order_by(m.AuditEvent.seq)
            )
            .scalars()
            .all()
        )
    assert audited == [keys[second], keys[first], keys[first]]  # one per view: the patient shown

    team = tokens.team
    filtered = web.get(f"/app/worklist?team={team}&measurement=blood-pressure")
    assert _listed(filtered.text) == [second]
    links = _links(filtered.text)
    assert links and all(f"team={team}" in href and "measurement=blood-pressure" in href for href in links)
    following = next(href for href in links if href.endswith("page=2"))
    assert _listed(web.get(following).text) == [first]
    red_only = web.get("/app/worklist?colour=red")
    assert _listed(red_only.text) == [second] and _links(red_only.text) == []  # one page: no page links
