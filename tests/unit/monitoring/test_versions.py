"""Which settings version is in force at a time: the highest whose valid_from is not after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from homediag.monitoring import default_groups
from homediag.monitoring.store import EPOCH, SettingsVersion, default_version, in_force

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def version(n: int, hours: int) -> SettingsVersion:
    return SettingsVersion(n, default_groups()["hypertension"].settings, T0 + timedelta(hours=hours), T0, "u", None)


def test_a_later_version_rules_from_its_valid_from_even_back_dated() -> None:
    history = [default_version(), version(1, 10), version(2, 5)]  # version 2 back-dated before version 1
    assert in_force(history, T0).version == 0
    assert in_force(history, T0 + timedelta(hours=6)).version == 2
    assert in_force(history, T0 + timedelta(hours=11)).version == 2
    history = [default_version(), version(1, 10), version(2, 20)]
    assert [in_force(history, T0 + timedelta(hours=h)).version for h in (9, 10, 19, 20)] == [0, 1, 1, 2]
    assert in_force(history, EPOCH).version == 0


@given(st.lists(st.integers(min_value=-100, max_value=100), max_size=6), st.integers(min_value=-120, max_value=120))
def test_in_force_is_the_highest_version_already_valid(starts: list[int], at: int) -> None:
    history = [default_version(), *(version(n + 1, h) for n, h in enumerate(starts))]
    chosen = in_force(history, T0 + timedelta(hours=at))
    valid = [v.version for v in history if v.valid_from <= T0 + timedelta(hours=at)]
    assert chosen.version == max(valid)
