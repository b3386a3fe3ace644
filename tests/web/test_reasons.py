"""Why a reading is red or yellow, or a patient blue: monitoring's reasons shown from the Danish catalogue
(English by the switch), with numbers written the language's way. Every kind of reason monitoring makes is
run through ``triage_reason``: a reason monitoring starts to word differently fails here, not silently in
English on a Danish page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from web_support import WebPilot, sign_in, web, web_pilot  # noqa: F401 - fixtures

from homediag.monitoring.plan import Plan, PlanItem, adherence
from homediag.monitoring.triage import MEASURES, Limits, Value, WeightChange, triage_value, triage_weight_change
from homediag.runtime import Runtime
from homediag.web.i18n import Formats, translations
from homediag.web.reasons import triage_reason

ZONE = ZoneInfo("Europe/Copenhagen")


def _said(text: str, lang: str) -> str:
    return triage_reason(text, translations(lang).gettext, Formats(lang, ZONE).number)


def test_every_measure_crossing_every_limit_is_said_in_danish_and_in_english() -> None:
    limits = Limits(red_low=1.5, yellow_low=2.5, yellow_high=40.5, red_high=300)
    for measure in MEASURES:
        for value, danish, english in (
            (301.0, "på eller over grænsen 300 (rød)", "at or above the limit 300 (red)"),
            (1.25, "under grænsen 1,5 (rød)", "below the limit 1.5 (red)"),
            (41.0, "på eller over grænsen 40,5 (gul)", "at or above the limit 40.5 (yellow)"),
            (2.0, "under grænsen 2,5 (gul)", "below the limit 2.5 (yellow)"),
        ):
            reason = triage_value(Value(measure, value, None), limits).reason
            assert reason is not None
            da, en = _said(reason, "da"), _said(reason, "en")
            assert da != reason and da.endswith(danish), (reason, da)
            assert en.endswith(english), (reason, en)
    assert _said("temperature 38.5 Cel ≥ 38 (yellow)", "da") == "Temperatur 38,5 °C, på eller over grænsen 38 (gul)"
    assert _said("systolic 181 mm[Hg] ≥ 180 (red)", "en") == (
        "Systolic blood pressure 181 mmHg, at or above the limit 180 (red)"
    )


def test_a_weight_gain_and_missing_measurements_are_said_in_danish() -> None:
    now = datetime(2026, 11, 30, 8, tzinfo=UTC)
    gain = triage_weight_change(82.3, now, [(now - timedelta(days=2), 80.0)], WeightChange(2.0, 3, 3.0))
    assert gain is not None and gain.reason is not None
    assert _said(gain.reason, "da") == "Vægtøgning på 2,3 kg inden for 3 dage (gul)"
    assert _said(gain.reason, "en") == "Weight gain of 2.3 kg within 3 days (yellow)"
    plan = Plan((PlanItem("blood-pressure", 2), PlanItem("weight")))
    found = adherence(plan, {"systolic": [now - timedelta(days=1)]}, now - timedelta(days=7), now, ZONE)
    reasons = found.reasons
    assert len(reasons) == 2
    assert [_said(r, "da") for r in reasons] == [
        "Blodtryk: 1 af 14 forventede målinger (blå: manglende målinger)",
        "Vægt: 0 af 7 forventede målinger (blå: manglende målinger)",
    ]
    assert _said("a text of another form", "da") == "a text of another form"  # shown as it is, never lost


def test_the_patient_page_and_the_report_say_why_in_danish_and_in_english_by_the_switch(
    web: TestClient, runtime: Runtime, tokens, web_pilot: WebPilot
) -> None:  # type: ignore[no-untyped-def]
    sign_in(web, runtime, tokens.ids["clinician"])
    pid = web_pilot.refused_for
    for path in (f"/app/patients/{pid}?days=30", f"/app/patients/{pid}/report"):
        danish = web.get(path).text
        assert re.search(r"Diastolisk blodtryk \d+ mmHg, på eller over grænsen 85 \(gul\)", danish), path
        assert "(yellow)" not in danish
    page = web.get("/app/worklist").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    switched = web.post("/app/language", data={"csrf": csrf.group(1), "lang": "en", "next": f"/app/patients/{pid}"})
    assert switched.status_code == 200
    english = web.get(f"/app/patients/{pid}?days=30").text
    assert re.search(r"Diastolic blood pressure \d+ mmHg, at or above the limit 85 \(yellow\)", english)
    assert "grænsen" not in english
