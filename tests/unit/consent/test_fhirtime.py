"""``consent.fhirtime``: dates and times as gateways and devices send them, with a local zone for the ones
without an offset (the PHD gateway's device and gateway times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from homediag.consent.fhirtime import COPENHAGEN, first_instant, local_instant, local_span

NUUK = ZoneInfo("America/Nuuk")


def test_an_instant_keeps_the_offset_it_was_sent_with() -> None:
    value = local_instant("2026-03-01T10:15:30.25+02:00")
    assert value == datetime(2026, 3, 1, 8, 15, 30, 250000, tzinfo=UTC)
    assert value is not None and value.isoformat() == "2026-03-01T10:15:30.250000+02:00"
    assert local_instant("2026-03-01T10:15:30Z") == datetime(2026, 3, 1, 10, 15, 30, tzinfo=UTC)
    assert local_instant("2026-03-01T10:15:30-03:30").utcoffset() == -timedelta(hours=3, minutes=30)  # type: ignore[union-attr]


def test_a_time_without_an_offset_is_read_in_the_local_zone() -> None:
    assert local_instant("2026-07-01T12:00:00") == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # Copenhagen, summer
    assert local_instant("2026-07-01T12:00:00", NUUK) == datetime(2026, 7, 1, 12, 0, tzinfo=NUUK)
    assert local_instant("2026-07-01T12:00:00", UTC) == datetime(2026, 7, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-07-01", "2026-07", "2026", "yesterday", "2026-13-01T00:00:00Z", "", None, 7])
def test_no_instant_without_a_time_or_from_what_is_not_a_datetime(text: object) -> None:
    assert local_instant(text) is None


def test_a_leap_second_is_the_last_instant_of_its_minute() -> None:
    assert local_instant("2016-12-31T23:59:60Z") == datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def test_a_span_of_a_date_month_or_year_covers_it_on_the_local_wall_clock() -> None:
    start, end = local_span("2026-02")
    assert start == datetime(2026, 2, 1, tzinfo=COPENHAGEN) == first_instant("2026-02")
    assert end == datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=COPENHAGEN)
    assert local_span("2026-12") == (
        datetime(2026, 12, 1, tzinfo=COPENHAGEN),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=COPENHAGEN),
    )
    assert local_span("2026") == (
        datetime(2026, 1, 1, tzinfo=COPENHAGEN),
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=COPENHAGEN),
    )
    assert local_span("2026-03-29", NUUK) == (
        datetime(2026, 3, 29, tzinfo=NUUK),
        datetime(2026, 3, 29, 23, 59, 59, 999999, tzinfo=NUUK),
    )


def test_a_span_of_an_instant_is_the_instant() -> None:
    instant = datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert local_span("2026-03-01T10:00:00+01:00") == (instant, instant)


@pytest.mark.parametrize("text", ["soon", "2026-02-30", "2026-1-01", "2026-01-01T10:00"])
def test_a_span_of_what_is_not_a_datetime_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        local_span(text)
