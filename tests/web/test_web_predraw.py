"""Charts drawn ahead after ingest (``web.predraw``): the next view of a page shown before finds its charts with
the new reading already drawn, the same picture the page would draw, and a chart drawn ahead for what the page no
longer shows (a threshold change, a consent that no longer covers the reading) is never shown. Over HTTP, the real
ASGI app, SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from web_support import COPENHAGEN, WebPilot, sign_in, web, web_pilot  # noqa: F401 - fixtures

from homediag.adapters.devices import DeviceTime, blood_pressure, weight_scale
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.synthetic import envelope, synthetic_patients
from homediag.web import charts, patient_view, predraw

HIGH = (Decimal(204), Decimal(121), Decimal(149))


def _send_high(pilot: Any, taken: datetime) -> str:
    """A high blood-pressure reading of the first pilot patient through ``POST /ingest``; its Observation id."""
    person = synthetic_patients(5, seed=12)[0]
    stamp = DeviceTime(taken.year, taken.month, taken.day, taken.hour, taken.minute, 0)
    raw = envelope(person, blood_pressure.encode(HIGH, timestamp=stamp, pulse_rate=70), taken + timedelta(minutes=1))
    response = pilot.client.post("/ingest", json=[raw], headers=pilot.tokens.auth("gateway"))
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["outcome"] == "created", result
    return str(result["observations"][0]["id"])


def _send_weight(pilot: Any, taken: datetime, kg: str) -> str:
    """A weight of the first pilot patient through ``POST /ingest``, from its scale; its Observation id."""
    person = synthetic_patients(5, seed=12)[0]
    stamp = DeviceTime(taken.year, taken.month, taken.day, taken.hour, taken.minute, 0)
    raw = envelope(person, weight_scale.encode(Decimal(kg), timestamp=stamp), taken + timedelta(minutes=1))
    raw["adapter"] = "ble-weight-scale"
    raw["device"] = {**raw["device"], "model": "WS-1", "serial": f"{person.cuff_serial}-WS-1"}
    response = pilot.client.post("/ingest", json=[raw], headers=pilot.tokens.auth("gateway"))
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["outcome"] == "created", result
    return str(result["observations"][0]["id"])


def _charts(html: str) -> list[str]:
    return re.findall(r'<svg[^>]*class="trend".*?</svg>', html, re.S)


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The titles of the charts drawn from now on (by any thread, in the drawing processes)."""
    drawn: list[str] = []
    real = charts._drawing

    def counted(arguments: tuple[Any, ...]) -> Any:
        drawn.append(str(arguments[1]))
        return real(arguments)

    monkeypatch.setattr(charts, "_drawing", counted)
    return drawn


def _forget(runtime: Runtime) -> None:
    """Every drawn chart and rendered row forgotten, in process and in the store: the page draws anew."""
    charts._DRAWN.clear()
    patient_view._ROWS.clear()
    patient_view._POINTS.clear()  # the points (their tooltips, colours) built anew too
    with runtime.sessions.begin() as session:
        session.execute(delete(m.DrawnChart))


def _taken() -> datetime:
    return datetime.now(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(minutes=20)


def test_the_next_view_finds_its_charts_with_the_new_reading_drawn_ahead_as_the_page_draws_them(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, draws: list[str]
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    pid = next(iter(web_pilot.shown))
    page = f"/app/patients/{pid}?days=30"
    points = web.get(page).text.count('data-series="systolic"')
    new_id = _send_high(pilot, _taken())
    predraw.DRAWER.settle(30)
    assert draws, "nothing was drawn ahead"
    draws.clear()
    shown = web.get(page).text
    assert shown.count('data-series="systolic"') == points + 1
    assert f'class="point triage-red" data-series="systolic" data-reading="{new_id}"' in shown
    assert draws == []  # both charts holding the new reading were found drawn
    _forget(runtime)
    drawn_now = web.get(page).text
    assert draws  # drawn by the page this time
    assert _charts(drawn_now) == _charts(shown) and len(_charts(shown)) >= 2  # the same pictures


def test_a_weight_drawn_ahead_is_coloured_by_the_weight_change_rule_as_the_page_colours_it(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, draws: list[str]
) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    sign_in(web, runtime, tokens.ids["clinician"])
    pid = next(iter(web_pilot.shown))
    page = f"/app/patients/{pid}?days=30"
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get(f"/app/patients/{pid}/thresholds").text)
    assert csrf
    form = {  # the heart-failure group's defaults: red at +3 kg within 3 days
        "csrf": csrf.group(1),
        "version": "0",
        "group": "heart-failure",
        "valid_from": (date.today() - timedelta(days=40)).isoformat(),
    }
    assert web.post(f"/app/patients/{pid}/thresholds", data=form).status_code == 200
    earlier = _send_weight(pilot, _taken() - timedelta(days=2), "80.0")
    assert f'data-series="body-weight" data-reading="{earlier}"' in web.get(page).text  # shown, held
    new_id = _send_weight(pilot, _taken(), "83.5")  # +3.5 kg since the earlier weight: red
    predraw.DRAWER.settle(30)
    assert draws, "nothing was drawn ahead"
    draws.clear()
    shown = web.get(page).text
    assert f'class="point triage-red" data-series="body-weight" data-reading="{new_id}"' in shown
    assert draws == []  # the weight's chart, coloured by the earlier weight, was found drawn
    _forget(runtime)
    assert _charts(web.get(page).text) == _charts(shown)


def test_a_chart_drawn_ahead_is_not_shown_after_a_threshold_change(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, draws: list[str]
) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    sign_in(web, runtime, tokens.ids["clinician"])
    pid = next(iter(web_pilot.shown))
    page = f"/app/patients/{pid}?days=30"
    web.get(page)
    new_id = _send_high(pilot, _taken())
    predraw.DRAWER.settle(30)
    thresholds = web.get(f"/app/patients/{pid}/thresholds").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', thresholds)
    assert csrf
    form = {
        "csrf": csrf.group(1),
        "version": "0",
        "group": "general",
        "systolic.yellow_high": "50",
        "systolic.red_high": "250",  # the new reading (204) is yellow now, not red
        "pulse.yellow_low": "1",
        "pulse.yellow_high": "299",
        "valid_from": (date.today() - timedelta(days=40)).isoformat(),
    }
    assert web.post(f"/app/patients/{pid}/thresholds", data=form).status_code == 200
    draws.clear()
    shown = web.get(page).text
    assert f'class="point triage-yellow" data-series="systolic" data-reading="{new_id}"' in shown
    assert 'triage-red" data-series="systolic"' not in shown
    assert draws  # drawn by the page: the chart drawn ahead had the old colours


def test_a_chart_drawn_ahead_with_a_reading_the_consent_no_longer_covers_is_not_shown(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    pid = next(iter(web_pilot.shown))
    page = f"/app/patients/{pid}?days=30"
    points = web.get(page).text.count('data-series="systolic"')
    taken = _taken()
    new_id = _send_high(pilot, taken)
    predraw.DRAWER.settle(30)
    with runtime.sessions() as session:
        ahead = session.execute(select(m.DrawnChart.svg).where(m.DrawnChart.svg.contains(new_id))).scalars().all()
        assert ahead  # drawn ahead, with the new reading
        key = session.execute(select(m.Patient.patient_key).where(m.Patient.id == pid)).scalar_one()
        consent_id = session.execute(select(m.Consent.id).where(m.Consent.patient_key == key)).scalar_one()
    consent = web.get(f"/fhir/Consent/{consent_id}", headers=tokens.auth("admin")).json()
    data_end = (taken - timedelta(hours=1)).isoformat()  # the data the consent covers ends before the new reading
    provision = {**consent.get("provision", {}), "dataPeriod": {"end": data_end}}
    changed = web.put(
        f"/fhir/Consent/{consent_id}", json={**consent, "provision": provision}, headers=tokens.auth("admin")
    )
    assert changed.status_code == 200, changed.text
    shown = web.get(page).text
    assert new_id not in shown  # not in a chart, nor in a table
    assert shown.count('data-series="systolic"') <= points
