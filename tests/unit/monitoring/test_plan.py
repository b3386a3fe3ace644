"""The monitoring plan: adherence, days with a reading, and when a patient is blue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from homediag.monitoring import Plan, PlanItem, adherence

END = datetime(2026, 3, 15, 0, 0, tzinfo=UTC)
CPH = ZoneInfo("Europe/Copenhagen")


def test_twice_daily_blood_pressure_over_a_week() -> None:
    plan = Plan((PlanItem("blood-pressure", times=2, every_days=1),))
    end = datetime(2026, 3, 15, tzinfo=CPH)  # local midnights: 7 calendar days in Copenhagen
    start = end - timedelta(days=7)
    times = [start + timedelta(days=d, hours=h) for d in range(7) for h in (7, 19)]
    full = adherence(plan, {"systolic": times}, start, end, CPH)
    assert not full.missing and full.ratio == 1.0
    item = full.items[0]
    assert (item.expected, item.received, item.days_with_reading, item.days) == (14, 14, 7, 7)
    # one evening missed: blue, 13 of 14
    short = adherence(plan, {"systolic": times[:-1]}, start, end, CPH)
    assert short.missing and short.items[0].received == 13
    assert short.reasons == ["blood-pressure: 13 of 14 expected readings"]


def test_weekly_weight_looks_back_a_week_from_a_one_day_period() -> None:
    plan = Plan((PlanItem("weight", times=1, every_days=7),))
    start = END - timedelta(days=1)
    assert not adherence(plan, {"weight": [END - timedelta(days=5)]}, start, END).missing
    assert adherence(plan, {"weight": [END - timedelta(days=8)]}, start, END).missing


def test_no_plan_is_never_blue() -> None:
    result = adherence(Plan(), {}, END - timedelta(days=14), END)
    assert not result.missing and result.ratio is None


@given(st.lists(st.integers(min_value=0, max_value=14 * 24 - 1), max_size=40))
def test_received_never_exceeds_what_was_sent_and_ratio_is_a_fraction(hours: list[int]) -> None:
    start = END - timedelta(days=14)
    times = [start + timedelta(hours=h) for h in hours]
    result = adherence(Plan((PlanItem("pulse", times=1, every_days=1),)), {"pulse": times}, start, END)
    item = result.items[0]
    assert item.received == len(times)
    assert item.expected == 14
    assert 0.0 <= (result.ratio or 0.0) <= 1.0
    assert item.days_with_reading == len({t.date() for t in times})
    assert result.missing == (item.days_with_reading < 14)
