"""What the worklist and the patient page remember between views (each patient's summary, drawn charts, shaped
readings) never shows what is no longer so: a withdrawn consent, a new reading, an acknowledgement, the passing
of time. Over HTTP, the real ASGI app, SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import COPENHAGEN, WebPilot, sign_in, web, web_pilot  # noqa: F401 - fixtures

from homediag.access import triage
from homediag.adapters.devices import DeviceTime, blood_pressure, thermometer
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.synthetic import SyntheticPatient, envelope, synthetic_patients


@pytest.fixture
def shown(web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot) -> tuple[SyntheticPatient, str]:  # type: ignore[no-untyped-def]
    """Signed in as the clinician: (the synthetic person of the first patient on the worklist, its id)."""
    sign_in(web, runtime, tokens.ids["clinician"])
    return synthetic_patients(5, seed=12)[0], next(iter(web_pilot.shown))


def _row(html: str, patient_id: str) -> str | None:
    found = re.search(rf'<tr data-patient="{patient_id}">(.*?)</tr>', html, re.S)
    return found.group(1) if found else None


def _send(pilot, person, payload: bytes, taken: datetime, adapter: str | None = None) -> None:  # type: ignore[no-untyped-def]
    raw = envelope(person, payload, taken + timedelta(minutes=1))
    if adapter:
        raw["adapter"] = adapter
        raw["device"] = {**raw["device"], "model": "TH-1", "serial": f"{person.cuff_serial}-TH"}
    response = pilot.client.post("/ingest", json=[raw], headers=pilot.tokens.auth("gateway"))
    assert response.status_code == 200, response.text


def _stamp(t: datetime) -> DeviceTime:
    return DeviceTime(t.year, t.month, t.day, t.hour, t.minute, 0)


def test_a_withdrawn_consent_takes_the_patient_off_the_remembered_worklist_at_once(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    gone, stays = list(web_pilot.shown)
    assert _row(web.get("/app/worklist").text, gone) is not None  # seen, and remembered
    assert _row(web.get("/app/worklist").text, gone) is not None
    with runtime.sessions() as session:
        key = session.execute(select(m.Patient.patient_key).where(m.Patient.id == gone)).scalar_one()
        consent_id = session.execute(select(m.Consent.id).where(m.Consent.patient_key == key)).scalar_one()
    consent = web.get(f"/fhir/Consent/{consent_id}", headers=tokens.auth("admin")).json()
    pilot.withdraw(consent)
    page = web.get("/app/worklist")
    assert _row(page.text, gone) is None
    assert web_pilot.shown[gone] not in page.text
    assert _row(page.text, stays) is not None
    assert web.get(f"/app/patients/{gone}?days=30").status_code == 404


def test_a_new_reading_and_an_acknowledgement_show_at_once_after_remembered_views(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    before = _row(web.get("/app/worklist").text, pid)
    chart = web.get(f"/app/patients/{pid}?days=14").text
    assert before is not None and "triage-red" not in before
    points = chart.count('data-series="systolic"')
    now = datetime.now(COPENHAGEN)
    midnight = datetime.combine(now.date(), time.min, COPENHAGEN)
    taken = now - min(timedelta(hours=1), (now - midnight) / 2)  # today, also just after midnight: a new day measured
    high = blood_pressure.encode((Decimal(204), Decimal(121), Decimal(149)), timestamp=_stamp(taken), pulse_rate=70)
    _send(pilot, person, high, taken)
    after = _row(web.get("/app/worklist").text, pid)
    assert after is not None and "triage-red" in after and "204/121" in after
    unacknowledged = re.search(r"(\d+) ikke kvitteret", after)
    assert unacknowledged, after
    page = web.get(f"/app/patients/{pid}?days=14").text
    assert page.count('data-series="systolic"') == points + 1  # the remembered chart was not reused
    reading = re.search(r'<tr data-reading="([^"]+)">(?:(?!</tr>).)*204/121', page, re.S)
    assert reading
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    acked = web.post(
        f"/app/patients/{pid}/acknowledge",
        data={"csrf": csrf.group(1), "observation": reading.group(1), "days": "14"},
        follow_redirects=False,
    )
    assert acked.status_code == 303, acked.text
    last = _row(web.get("/app/worklist").text, pid)
    assert last is not None
    now_open = re.search(r"(\d+) ikke kvitteret", last)
    assert now_open is None or int(now_open.group(1)) == int(unacknowledged.group(1)) - 1


def test_the_passing_of_time_alone_changes_the_remembered_worklist(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    pid = next(iter(web_pilot.shown))
    row = _row(web.get("/app/worklist").text, pid)
    assert row is not None and "10 af 14 dage" in row
    computed: list[str] = []  # the patients computed whole from their history
    load = triage.load
    monkeypatch.setattr(triage, "load", lambda session, keys, *a: computed.extend(keys) or load(session, keys, *a))
    real = runtime.clock
    # six days on, at noon: the last 14 days then begin at noon of the 8th seeded day, which has a reading at 19:xx
    # and one at 07:xx (before noon): 8 days. (Six days on from the current time of day was 7 or 8 days, by the hour.)
    noon = datetime.combine(real().astimezone(COPENHAGEN).date() + timedelta(days=6), time(12, 0), COPENHAGEN)
    later = noon.astimezone(UTC)
    runtime.clock = lambda: later
    try:
        row = _row(web.get("/app/worklist").text, pid)
        assert row is not None and "8 af 14 dage" in row
        assert not computed  # the remembered parts finished again at the later time
    finally:
        runtime.clock = real


def test_a_temperature_with_a_decimal_is_shown_and_charted(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    taken = datetime.now(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(hours=2)
    _send(pilot, person, thermometer.encode(Decimal("36.8"), timestamp=_stamp(taken)), taken, "ble-thermometer")
    page = web.get(f"/app/patients/{pid}?days=14").text
    section = page[page.index('data-measurement="body-temperature"') :]
    assert "36,8" in section
    assert section.count('data-series="body-temperature"') == 1
    assert "36,8" in (_row(web.get("/app/worklist").text, pid) or "")


def test_a_back_filled_older_reading_shows_at_once_and_the_latest_value_stays_the_newest(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    now = datetime.now(COPENHAGEN).replace(second=0, microsecond=0)
    newest = now - timedelta(minutes=30)
    normal = blood_pressure.encode((Decimal(121), Decimal(77), Decimal(92)), timestamp=_stamp(newest), pulse_rate=64)
    _send(pilot, person, normal, newest)
    row = _row(web.get("/app/worklist").text, pid)
    assert row is not None and "121/77" in row and "triage-red" not in row  # remembered from here on
    older = now - timedelta(days=2, hours=3)  # arrives late: taken before the readings already shown
    high = blood_pressure.encode((Decimal(199), Decimal(118), Decimal(145)), timestamp=_stamp(older), pulse_rate=66)
    _send(pilot, person, high, older)
    row = _row(web.get("/app/worklist").text, pid)
    assert row is not None and "triage-red" in row
    assert "121/77" in row and "199/118" not in row  # the latest value is still the newest reading
    newer = now - timedelta(minutes=10)  # then a new one, dated after all: the remembered summary grows
    later = blood_pressure.encode((Decimal(131), Decimal(79), Decimal(96)), timestamp=_stamp(newer), pulse_rate=61)
    _send(pilot, person, later, newer)
    row = _row(web.get("/app/worklist").text, pid)
    assert row is not None and "triage-red" in row and "131/79" in row and "121/77" not in row


def _restart(runtime: Runtime) -> None:
    """What a freshly started process has: no memories of the pages or of monitoring; the store as it is."""
    from homediag.access import readings, worklist
    from homediag.monitoring import store
    from homediag.web import charts, patient_view, worklist_view

    worklist._MEMO.forget(runtime.engine)
    store.forget()
    memories = (readings._SHAPES, charts._DRAWN, patient_view._ROWS, patient_view._POINTS, worklist_view._CELLS)
    for memory in (*memories, runtime.consent_cache):
        memory.clear()


def test_a_restarted_process_shows_the_kept_worklist_and_nothing_that_is_no_longer_so(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    before = _row(web.get("/app/worklist").text, pid)
    assert before is not None and "10 af 14 dage" in before
    with runtime.sessions() as session:
        assert session.execute(select(m.WorklistSummary.patient_key)).scalars().all()  # kept
    _restart(runtime)
    assert _row(web.get("/app/worklist").text, pid) == before  # from the kept part

    now = datetime.now(COPENHAGEN)
    midnight = datetime.combine(now.date(), time.min, COPENHAGEN)
    taken = now - min(timedelta(hours=1), (now - midnight) / 2)  # today, also just after midnight: a new day measured
    high = blood_pressure.encode((Decimal(204), Decimal(121), Decimal(149)), timestamp=_stamp(taken), pulse_rate=70)
    _send(pilot, person, high, taken)
    _restart(runtime)
    after = _row(web.get("/app/worklist").text, pid)
    assert after is not None and "triage-red" in after and "204/121" in after and "11 af 14 dage" in after

    real = runtime.clock
    noon = datetime.combine(real().astimezone(COPENHAGEN).date() + timedelta(days=6), time(12, 0), COPENHAGEN)
    later = noon.astimezone(UTC)
    runtime.clock = lambda: later
    try:
        _restart(runtime)
        row = _row(web.get("/app/worklist").text, pid)
        assert row is not None and "9 af 14 dage" in row  # the kept part's time had passed: 8 seeded days and today
    finally:
        runtime.clock = real


def test_a_restarted_process_shows_a_new_reading_and_its_flag_from_what_ingest_kept(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    taken = datetime.now(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(hours=1)
    irregular = blood_pressure.encode(
        (Decimal(187), Decimal(109), Decimal(135)), timestamp=_stamp(taken), pulse_rate=88, status=0x04
    )
    _send(pilot, person, irregular, taken)
    with runtime.sessions() as session:  # kept by ingest, before any page read them
        shapes = dict(session.execute(select(m.ReadingShape.observation_id, m.ReadingShape.shape)).all())
    assert any("187" in s for s in shapes.values()) and any("irregular-pulse" in s for s in shapes.values())
    _restart(runtime)
    page = web.get(f"/app/patients/{pid}?days=14").text
    assert "187/109" in page and "Uregelmæssig puls" in page
    row = _row(web.get("/app/worklist").text, pid)
    assert row is not None and "187/109" in row and "triage-red" in row


def _charts(html: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", html, re.S)


def test_a_restarted_process_serves_the_kept_charts_and_draws_a_changed_one_again(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    drawn = _charts(web.get(f"/app/patients/{pid}?days=14").text)
    assert drawn
    with runtime.sessions() as session:
        kept = session.execute(select(m.DrawnChart.svg)).scalars().all()  # the charts, and the tables' rows
    assert len([svg for svg in kept if svg.startswith("<svg")]) == len(drawn)
    _restart(runtime)
    assert _charts(web.get(f"/app/patients/{pid}?days=14").text) == drawn  # the kept ones, as drawn

    taken = datetime.now(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(minutes=20)
    _send(
        pilot, person, blood_pressure.encode((Decimal(211), Decimal(97), Decimal(135)), timestamp=_stamp(taken)), taken
    )
    _restart(runtime)
    after = _charts(web.get(f"/app/patients/{pid}?days=14").text)
    assert after != drawn and any(" 211 " in svg for svg in after) and not any(" 211 " in svg for svg in drawn)


def test_a_summary_grown_by_new_readings_is_the_one_computed_whole(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown
) -> None:  # type: ignore[no-untyped-def]
    person, pid = shown
    assert _row(web.get("/app/worklist").text, pid) is not None  # remembered from here on
    now = datetime.now(COPENHAGEN).replace(second=0, microsecond=0)
    for minutes, values in ((40, (196, 112, 140)), (20, (128, 79, 95))):  # a red one, then a green one
        taken = now - timedelta(minutes=minutes)
        payload = blood_pressure.encode(tuple(Decimal(v) for v in values), timestamp=_stamp(taken), pulse_rate=71)  # type: ignore[arg-type]
        _send(pilot, person, payload, taken)
        grown = _row(web.get("/app/worklist").text, pid)  # from the remembered summary and the new reading
        with runtime.sessions.begin() as session:
            session.execute(m.WorklistSummary.__table__.delete())
        _restart(runtime)
        whole = _row(web.get("/app/worklist").text, pid)  # computed from all the readings
        assert grown is not None and grown == whole
    assert "triage-red" in (grown or "") and "128/79" in (grown or "")


def _table_rows(html: str) -> list[str]:
    return re.findall(r"<tr data-reading=.*?</tr>", html, re.S)


def test_a_restarted_process_serves_the_kept_table_rows_and_renders_changed_ones_again(
    web: TestClient, runtime: Runtime, tokens, pilot, web_pilot: WebPilot, shown, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from homediag.web import patient_view

    person, pid = shown
    rows = _table_rows(web.get(f"/app/patients/{pid}?days=14").text)
    assert rows
    _restart(runtime)
    with monkeypatch.context() as patched:

        def no_rendering(lang: str) -> None:
            raise AssertionError("a kept row was rendered again")

        patched.setattr(patient_view, "environment", no_rendering)
        assert _table_rows(web.get(f"/app/patients/{pid}?days=14").text) == rows  # the kept ones, as rendered

    taken = datetime.now(COPENHAGEN).replace(second=0, microsecond=0) - timedelta(minutes=20)
    _send(
        pilot, person, blood_pressure.encode((Decimal(212), Decimal(98), Decimal(136)), timestamp=_stamp(taken)), taken
    )
    _restart(runtime)
    after = _table_rows(web.get(f"/app/patients/{pid}?days=14").text)
    assert len(after) == len(rows) + 1 and "212/98" in after[0] and not any("212/98" in r for r in rows)
