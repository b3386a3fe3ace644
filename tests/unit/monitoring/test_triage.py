"""Triage rules: a value's colour against limits, the weight-change rule, readings as stored Observations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homediag.monitoring import Colour, Limits, Thresholds, WeightChange, default_groups, triage, worst
from homediag.monitoring.triage import MDC, Direction, Value, measures_of, triage_value

HYPERTENSION = default_groups()["hypertension"].settings.thresholds
HEART_FAILURE = default_groups()["heart-failure"].settings.thresholds
GENERAL = default_groups()["general"].settings.thresholds


def bp(systolic: float, diastolic: float, at: str = "2026-03-01T08:00:00+01:00", unit: str = "mm[Hg]") -> dict:
    def comp(code: str, value: float) -> dict:
        return {
            "code": {"coding": [{"system": MDC, "code": code}]},
            "valueQuantity": {"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": unit},
        }

    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": MDC, "code": "150020"}]},
        "effectiveDateTime": at,
        "component": [comp("150021", systolic), comp("150022", diastolic), comp("150023", 100)],
    }


def weight(kg: float, at: datetime) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": MDC, "code": "188736"}]},
        "effectiveDateTime": at.isoformat(),
        "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    }


@pytest.mark.parametrize(
    ("systolic", "diastolic", "colour"),
    [
        (120, 80, Colour.GREEN),
        (134, 84, Colour.GREEN),
        (135, 80, Colour.YELLOW),  # ESH 2023: home BP >= 135/85 is high
        (130, 85, Colour.YELLOW),
        (179, 109, Colour.YELLOW),
        (180, 90, Colour.RED),
        (140, 110, Colour.RED),
        (99, 60, Colour.YELLOW),
        (89, 50, Colour.RED),
    ],
)
def test_home_blood_pressure_against_esh_2023(systolic: int, diastolic: int, colour: Colour) -> None:
    assert triage(bp(systolic, diastolic), HYPERTENSION).colour == colour


def test_each_component_of_a_blood_pressure_is_judged_and_the_worst_wins() -> None:
    result = triage(bp(182, 86), HYPERTENSION)
    by_measure = {v.measure: v for v in result.verdicts}
    assert by_measure["systolic"].colour == Colour.RED and by_measure["systolic"].direction == Direction.CRITICAL_HIGH
    assert by_measure["diastolic"].colour == Colour.YELLOW and by_measure["diastolic"].direction == Direction.HIGH
    assert by_measure["systolic"].component == 0 and by_measure["diastolic"].component == 1
    assert result.colour == Colour.RED
    assert "systolic 182" in result.reasons[0]


def test_a_value_in_another_unit_is_not_triaged() -> None:
    result = triage(bp(20, 12, unit="kPa"), HYPERTENSION)
    assert not result.triaged and result.colour == Colour.GREEN


def test_a_measure_without_limits_is_not_triaged() -> None:
    assert not triage(("glucose", 2.0), HYPERTENSION).triaged
    assert triage(("glucose", 2.0), GENERAL).colour == Colour.RED


@pytest.mark.parametrize(
    ("measure", "value", "colour"),
    [
        ("spo2", 96, Colour.GREEN),
        ("spo2", 93, Colour.YELLOW),
        ("spo2", 91, Colour.RED),
        ("pulse", 45, Colour.YELLOW),
        ("pulse", 100, Colour.YELLOW),
        ("pulse", 135, Colour.RED),
        ("temperature", 37.2, Colour.GREEN),
        ("temperature", 38.0, Colour.YELLOW),
        ("temperature", 39.5, Colour.RED),
        ("temperature", 35.0, Colour.RED),
        ("glucose", 3.5, Colour.YELLOW),
        ("glucose", 2.9, Colour.RED),
        ("glucose", 8.0, Colour.GREEN),
    ],
)
def test_general_limits(measure: str, value: float, colour: Colour) -> None:
    assert triage((measure, value), GENERAL).colour == colour


def test_copd_group_accepts_a_lower_saturation() -> None:
    copd = default_groups()["copd"].settings.thresholds
    assert triage(("spo2", 89), copd).colour == Colour.GREEN
    assert triage(("spo2", 89), GENERAL).colour == Colour.RED


def test_heart_failure_weight_gain_of_2_kg_in_3_days_is_yellow_3_kg_red() -> None:
    day = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    earlier = [(day - timedelta(days=3), 80.0), (day - timedelta(days=2), 80.6), (day - timedelta(days=1), 81.2)]
    assert triage(weight(81.9, day), HEART_FAILURE, earlier_weights=earlier).colour == Colour.GREEN
    yellow = triage(weight(82.0, day), HEART_FAILURE, earlier_weights=earlier)
    assert yellow.colour == Colour.YELLOW and yellow.verdicts[0].direction == Direction.CHANGE_UP
    assert "+2 kg within 3 days" in yellow.reasons[0]
    assert triage(weight(83.0, day), HEART_FAILURE, earlier_weights=earlier).colour == Colour.RED
    # a weight from more than 3 days before does not count, nor does a later one
    older = [(day - timedelta(days=3, minutes=1), 78.0), (day + timedelta(hours=1), 70.0)]
    assert triage(weight(81.0, day), HEART_FAILURE, earlier_weights=older).colour == Colour.GREEN
    # no earlier weight: nothing to compare, and heart failure has no absolute weight limit
    assert not triage(weight(120.0, day), HEART_FAILURE).triaged


def test_measures_of_a_stored_observation() -> None:
    values = measures_of(bp(120, 80))
    assert [(v.measure, v.value, v.component) for v in values] == [("systolic", 120, 0), ("diastolic", 80, 1)]
    assert measures_of({"resourceType": "Observation", "code": {"coding": [{"system": "x", "code": "150021"}]}}) == []


limit_values = st.floats(min_value=0, max_value=300, allow_nan=False)


@given(st.lists(limit_values, min_size=4, max_size=4), st.floats(min_value=-50, max_value=400, allow_nan=False))
def test_colour_follows_the_sorted_limits(raw: list[float], value: float) -> None:
    red_low, yellow_low, yellow_high, red_high = sorted(raw)
    limits = Limits(red_low, yellow_low, yellow_high, red_high)
    colour = triage_value(Value("systolic", value, "mm[Hg]"), limits).colour
    if value >= red_high or value < red_low:
        assert colour == Colour.RED
    elif value >= yellow_high or value < yellow_low:
        assert colour == Colour.YELLOW
    else:
        assert colour == Colour.GREEN


@given(st.floats(min_value=0, max_value=300), st.floats(min_value=0, max_value=300), st.floats(0, 20))
def test_raising_a_high_limit_never_makes_a_reading_worse(value: float, high: float, more: float) -> None:
    before = triage(("systolic", value), Thresholds({"systolic": Limits(yellow_high=high)}))
    after = triage(("systolic", value), Thresholds({"systolic": Limits(yellow_high=high + more)}))
    assert after.colour.severity <= before.colour.severity


def test_worst_orders_red_yellow_blue_green() -> None:
    assert worst([Colour.GREEN, Colour.BLUE]) == Colour.BLUE
    assert worst([Colour.BLUE, Colour.YELLOW, Colour.GREEN]) == Colour.YELLOW
    assert worst([Colour.YELLOW, Colour.RED]) == Colour.RED
    assert worst([]) == Colour.GREEN


def test_weight_change_rule_checks_itself() -> None:
    assert WeightChange(kg=2, days=3, red_kg=1).check() is not None
    assert WeightChange(kg=0).check() is not None
    assert Limits(red_low=100, yellow_low=90).check() is not None
