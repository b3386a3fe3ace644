"""Ingest keeps each new reading's values and triage (``homediag.monitoring.ingested``) in the transaction that
stores it, under the patient's settings content in force at the reading's time, so that no read has to triage it;
a weight under a weight-change rule is never kept (its colour depends on earlier weights). What a restarted process
then shows is what the rules say. Over HTTP, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from test_monitoring import CPH, cuff, hours_ago, put_settings, scale

from homediag.adapters.devices import DeviceTime
from homediag.adapters.devices.blood_pressure import encode
from homediag.monitoring import store
from homediag.store import models as m
from homediag.synthetic import envelope, synthetic_patients


@pytest.fixture
def patient(client, tokens, pilot):  # type: ignore[no-untyped-def]
    synthetic = synthetic_patients(1, seed=21)[0]
    pid = pilot.enrol(synthetic.cpr, family=synthetic.family, given=synthetic.given)
    pilot.consent(pid)
    return synthetic, pid


def _kept(runtime, oid: str) -> tuple[str | None, list[str]]:  # type: ignore[no-untyped-def]
    """(the kept values' text, the kept triages' colours) of one Observation."""
    with runtime.sessions() as session:
        values = session.execute(
            select(m.ReadingValues.measured).where(m.ReadingValues.observation_id == oid)
        ).scalar_one_or_none()
        triages = session.execute(select(m.ReadingTriage.verdicts).where(m.ReadingTriage.observation_id == oid))
        return values, [text for (text,) in triages]


def _colours(client, tokens, pid: str) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    found = client.get(f"/monitoring/patients/{pid}/readings?days=5", headers=tokens.auth("clinician"))
    assert found.status_code == 200, found.text
    return {r["observation"].split("/")[1]: r["colour"] for r in found.json()["readings"]}


def test_a_reading_s_values_and_triage_are_kept_when_it_arrives_under_the_settings_in_force(
    client, tokens, patient, runtime
) -> None:  # type: ignore[no-untyped-def]
    synthetic, pid = patient
    high = cuff(client, tokens, synthetic, 140, 80, hours_ago(30))  # under the defaults: yellow (>= 135)
    values, triages = _kept(runtime, high)  # before any read
    assert values is not None and "140" in values and "80" in values
    assert len(triages) == 1 and '"yellow"' in triages[0]

    changed = put_settings(
        client,
        tokens,
        pid,
        {"thresholds": {"systolic": {"yellow_high": 145}}, "valid_from": hours_ago(10).isoformat()},
        0,
    )
    assert changed.status_code == 200, changed.text
    later = cuff(client, tokens, synthetic, 140, 80, hours_ago(1))  # in force since 10 hours: green under 145
    assert ['"yellow"' in t for t in _kept(runtime, later)[1]] == [False]

    store.forget()  # a restart: the colours come from what ingest kept
    assert _colours(client, tokens, pid) == {high: "yellow", later: "green"}


def test_a_list_of_envelopes_keeps_every_new_reading_once(client, tokens, patient, runtime) -> None:  # type: ignore[no-untyped-def]
    synthetic, pid = patient
    bodies = []
    for hours, systolic in ((6, 190), (5, 120)):
        local = hours_ago(hours).astimezone(CPH)
        stamp = DeviceTime(local.year, local.month, local.day, local.hour, local.minute, local.second)
        payload = encode((Decimal(systolic), Decimal(80), Decimal((systolic + 160) // 3)), timestamp=stamp, user_id=1)
        bodies.append(envelope(synthetic, payload, datetime.now(UTC)))
    sent = client.post("/ingest", json=[*bodies, bodies[0]], headers=tokens.auth("gateway"))  # one sent twice
    assert sent.status_code in (200, 201, 207), sent.text
    ids = [o["id"] for r in sent.json()["results"] for o in r["observations"] if o["code"] == "150020"]
    red, green = ids[0], ids[1]
    assert len(_kept(runtime, red)[1]) == 1 and '"red"' in _kept(runtime, red)[1][0]
    assert len(_kept(runtime, green)[1]) == 1 and '"red"' not in _kept(runtime, green)[1][0]
    store.forget()
    assert _colours(client, tokens, pid) == {red: "red", green: "green"}


def test_a_weight_under_a_weight_change_rule_keeps_its_values_but_never_its_triage(
    client, tokens, patient, runtime
) -> None:  # type: ignore[no-untyped-def]
    synthetic, pid = patient
    put_settings(client, tokens, pid, {"group": "heart-failure", "valid_from": hours_ago(24 * 7).isoformat()}, 0)
    latest = scale(client, tokens, synthetic, "82.5", hours_ago(2))
    values, triages = _kept(runtime, latest)
    assert values is not None and "82.5" in values and triages == []
    older = scale(client, tokens, synthetic, "80.0", hours_ago(30))  # back-filled: makes the latest a gain
    store.forget()
    assert _colours(client, tokens, pid) == {older: None, latest: "yellow"}
