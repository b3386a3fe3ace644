"""Each reading's values and triage kept in the store (``homediag.monitoring.persisted``), so that a freshly started
process need not triage every reading again, never give a colour that is no longer so: a threshold change
re-triages, and a weight whose colour depends on earlier weights follows a back-filled older one. Each "restart"
empties the process's memories (``store.forget``); the store keeps its rows. Over HTTP, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from test_monitoring import cuff, hours_ago, put_settings, scale

from homediag.monitoring import store
from homediag.store import models as m
from homediag.synthetic import synthetic_patients


@pytest.fixture
def patient(client, tokens, pilot):  # type: ignore[no-untyped-def]
    synthetic = synthetic_patients(1, seed=12)[0]
    pid = pilot.enrol(synthetic.cpr, family=synthetic.family, given=synthetic.given)
    pilot.consent(pid)
    return synthetic, pid


def _readings(client, tokens, pid: str) -> list[tuple[str, str | None]]:
    found = client.get(f"/monitoring/patients/{pid}/readings?days=5", headers=tokens.auth("clinician"))
    assert found.status_code == 200, found.text
    return [(r["observation"].split("/")[1], r["colour"]) for r in found.json()["readings"]]


def _status(client, tokens, pid: str) -> dict:  # type: ignore[type-arg]
    found = client.get(f"/monitoring/patients/{pid}/status?days=3", headers=tokens.auth("clinician"))
    assert found.status_code == 200, found.text
    return found.json()  # type: ignore[no-any-return]


def test_a_restarted_process_gives_the_kept_colours_and_a_threshold_change_re_triages(
    client, tokens, patient, runtime
) -> None:  # type: ignore[no-untyped-def]
    synthetic, pid = patient
    high = cuff(client, tokens, synthetic, 140, 80, hours_ago(5))
    normal = cuff(client, tokens, synthetic, 120, 75, hours_ago(4))
    assert _status(client, tokens, pid)["colour"] == "yellow"
    with runtime.sessions() as session:
        kept = session.execute(select(func.count()).select_from(m.ReadingTriage)).scalar_one()
    assert kept >= 2  # both readings' triage under the defaults

    store.forget()  # a restart: the triage now comes from the store
    assert _readings(client, tokens, pid) == [(high, "yellow"), (normal, "green")]
    assert _status(client, tokens, pid)["colour"] == "yellow"

    changed = put_settings(client, tokens, pid, {"thresholds": {"systolic": {"yellow_high": 145}}}, 0)
    assert changed.status_code == 200, changed.text
    put_settings(client, tokens, pid, {"valid_from": hours_ago(24).isoformat()}, 1)  # in force for both readings
    store.forget()
    assert _readings(client, tokens, pid) == [(high, "green"), (normal, "green")]
    assert _status(client, tokens, pid)["colour"] == "green"

    back = put_settings(client, tokens, pid, {"thresholds": {"systolic": {"yellow_high": 135}}}, 2)
    assert back.status_code == 200, back.text
    put_settings(client, tokens, pid, {"valid_from": hours_ago(24).isoformat()}, 3)
    store.forget()
    assert _readings(client, tokens, pid) == [(high, "yellow"), (normal, "green")]  # the defaults' content again
    assert _status(client, tokens, pid)["colour"] == "yellow"


def test_a_back_filled_older_weight_changes_a_later_weight_s_colour_after_a_restart(client, tokens, patient) -> None:  # type: ignore[no-untyped-def]
    synthetic, pid = patient
    put_settings(client, tokens, pid, {"group": "heart-failure", "valid_from": hours_ago(24 * 7).isoformat()}, 0)
    latest = scale(client, tokens, synthetic, "82.5", hours_ago(2))
    assert _readings(client, tokens, pid) == [(latest, None)]  # nothing earlier to compare with
    assert not any("kg within" in r for r in _status(client, tokens, pid)["reasons"])

    store.forget()
    older = scale(client, tokens, synthetic, "80.0", hours_ago(30))  # arrives late: taken before the latest
    assert _readings(client, tokens, pid) == [(older, None), (latest, "yellow")]  # +2.5 kg within 3 days
    assert any("weight +2.5 kg within 3 days" in r for r in _status(client, tokens, pid)["reasons"])
    store.forget()
    assert _readings(client, tokens, pid) == [(older, None), (latest, "yellow")]
