"""Settings as JSON: defaults per patient group, what a change may say, and where a bad one is wrong."""

from __future__ import annotations

import pytest

from homediag.monitoring import SettingsError, default_groups, parse_settings


def test_every_default_group_round_trips_through_json() -> None:
    for group in default_groups().values():
        assert parse_settings(group.settings.to_json()) == group.settings


def test_a_group_alone_takes_its_defaults_and_a_part_given_replaces_that_part() -> None:
    hf = parse_settings({"group": "heart-failure"})
    assert hf == default_groups()["heart-failure"].settings
    changed = parse_settings({"plan": [{"measurement": "weight", "times": 1, "every_days": 2}]}, hf)
    assert changed.thresholds == hf.thresholds and changed.plan.items[0].every_days == 2
    no_rule = parse_settings({"weight_change": None}, hf)
    assert no_rule.thresholds.weight_change is None and no_rule.thresholds.limits == hf.thresholds.limits


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ({"group": "astronauts"}, "group", "unknown patient group"),
        ({"thresholds": {"systolic": {"yellow_high": "high"}}}, "thresholds.systolic.yellow_high", "a number"),
        ({"thresholds": {"systolic": {"yellow_high": 150, "red_high": 140}}}, "thresholds.systolic", "must not be"),
        ({"thresholds": {"height": {}}}, "thresholds.height", "unknown measure"),
        ({"thresholds": {"weight": {"unit": "[lb_av]"}}}, "thresholds.weight.unit", "are in kg"),
        ({"plan": [{"measurement": "weight", "times": 0}]}, "plan[0]", "times must be"),
        ({"plan": [{"measurement": "mood"}]}, "plan[0]", "unknown measurement"),
        ({"plan": [{"measurement": "weight"}, {"measurement": "weight"}]}, "plan[1]", "planned twice"),
        ({"weight_change": {"kg": 2, "days": 3, "red_kg": 1}}, "weight_change", "must not be below"),
        ({"colour": "red"}, "settings.colour", "unknown field"),
    ],
)
def test_bad_settings_say_what_and_where(body: dict, path: str, words: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings(body)
    assert caught.value.path == path
    assert words in caught.value.message
