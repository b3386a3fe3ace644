"""Instants as microseconds since the epoch (``monitoring.instants``): their local dates are the dates
``datetime.astimezone`` gives, across the change to winter time in Copenhagen and where the clock goes back at
midnight (Santiago de Chile: the same local date twice), and the round trip loses no microsecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from homediag.monitoring.instants import instant, local_ordinal, local_ordinals, micros

ZONES = [ZoneInfo("Europe/Copenhagen"), ZoneInfo("America/Santiago"), ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC")]
AROUND = datetime(2026, 10, 24, tzinfo=UTC)  # Copenhagen goes back on 25 October


@given(
    minutes=st.lists(st.integers(-400 * 24 * 60, 400 * 24 * 60), min_size=1, max_size=40),
    micro=st.integers(0, 59_999_999),
    zone=st.sampled_from(ZONES),
)
def test_local_dates_of_microseconds_are_the_dates_astimezone_gives(
    minutes: list[int], micro: int, zone: ZoneInfo
) -> None:
    times = [AROUND + timedelta(minutes=m, microseconds=micro) for m in sorted(minutes)]
    us = [micros(t) for t in times]
    assert [instant(u) for u in us] == times
    expected = [t.astimezone(zone).date().toordinal() for t in times]
    assert [local_ordinal(u, zone) for u in us] == expected
    assert local_ordinals(us, zone) == set(expected)


def test_the_hours_around_a_clock_change_have_their_own_dates() -> None:
    santiago = ZoneInfo("America/Santiago")
    start = datetime(2026, 4, 4, 20, tzinfo=UTC)  # the clocks go back from 24:00 to 23:00 on 4 April 2026
    times = [start + timedelta(minutes=15 * n) for n in range(6 * 4 * 4)]
    for zone in (santiago, ZoneInfo("Europe/Copenhagen")):
        assert [local_ordinal(micros(t), zone) for t in times] == [t.astimezone(zone).date().toordinal() for t in times]
