"""The monitoring plan: which measurements a patient takes how often, and adherence against it. Pure.

A plan item asks for ``times`` readings of a measure every ``every_days`` days (blood pressure twice a day:
``times=2, every_days=1``; weight once a week: ``times=1, every_days=7``). For a period, the item's windows are
consecutive spans of ``every_days`` ending at the period's end, going back until one reaches the period's start
(a period shorter than the span still has one window: "weekly weight" asked about today looks back a week).
A window with fewer readings than ``times`` is a shortfall: the patient is *blue* (missing measurements).
Blood pressure is counted by its systolic value (one cuff reading, one reading).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from .instants import DAY, local_ordinals, micros

PLAN_MEASURES: dict[str, str] = {
    "blood-pressure": "systolic",
    "pulse": "pulse",
    "spo2": "spo2",
    "temperature": "temperature",
    "weight": "weight",
    "glucose": "glucose",
}


@dataclass(frozen=True)
class PlanItem:
    measurement: str  # a key of PLAN_MEASURES
    times: int = 1
    every_days: int = 1

    def check(self) -> str | None:
        if self.measurement not in PLAN_MEASURES:
            return f"unknown measurement {self.measurement!r}; known: {', '.join(PLAN_MEASURES)}"
        if not 1 <= self.times <= 24:
            return f"times must be between 1 and 24 (got {self.times})"
        if not 1 <= self.every_days <= 90:
            return f"every_days must be between 1 and 90 (got {self.every_days})"
        return None

    @property
    def measure(self) -> str:
        return PLAN_MEASURES[self.measurement]


@dataclass(frozen=True)
class Plan:
    items: tuple[PlanItem, ...] = ()


@dataclass(frozen=True)
class ItemAdherence:
    """One plan item over a period: readings expected and received, days with a reading, and windows short."""

    measurement: str
    expected: int
    received: int
    days_with_reading: int
    days: int
    short_windows: int

    @property
    def missing(self) -> int:
        return max(self.expected - self.received, 0) if self.short_windows else 0

    @property
    def ratio(self) -> float | None:
        """Received over expected, at most 1 (None when nothing was expected)."""
        return min(self.received / self.expected, 1.0) if self.expected else None


@dataclass(frozen=True)
class Adherence:
    items: tuple[ItemAdherence, ...]

    @property
    def missing(self) -> bool:
        """Whether any plan item fell short in the period (the patient's colour is then at least blue)."""
        return any(i.short_windows for i in self.items)

    @property
    def ratio(self) -> float | None:
        """Received over expected across the plan's items (each capped at its expectation)."""
        expected = sum(i.expected for i in self.items)
        if not expected:
            return None
        return sum(min(i.received, i.expected) for i in self.items) / expected

    @property
    def reasons(self) -> list[str]:
        return [
            f"{i.measurement}: {i.received} of {i.expected} expected readings" for i in self.items if i.short_windows
        ]


def _count(start: datetime, end: datetime, every_days: int) -> int:
    """How many windows of ``every_days`` an item has over [start, end)."""
    return max(1, math.ceil((end - start) / timedelta(days=every_days))) if end > start else 1


def _windows(start: datetime, end: datetime, every_days: int) -> list[tuple[datetime, datetime]]:
    span = timedelta(days=every_days)
    return [(end - span * (k + 1), end - span * k) for k in range(_count(start, end, every_days))][::-1]


def reach(plan: Plan, start: datetime, end: datetime) -> datetime:
    """The earliest instant the windows of ``plan``'s items over [start, end) reach back to (``end`` when the plan
    has none): a window is ``every_days`` long and they step back from ``end``, so an item every 5 days over 14
    days looks back 15 (three windows), not 5. A reader of the readings ``adherence`` counts starts there."""
    return min((_windows(start, end, item.every_days)[0][0] for item in plan.items), default=end)


def adherence(
    plan: Plan,
    readings: Mapping[str, Iterable[datetime]],
    start: datetime,
    end: datetime,
    zone: ZoneInfo | None = None,
) -> Adherence:
    """Adherence of ``readings`` (measure -> times, aware) to ``plan`` over [start, end). Days with a reading
    are counted as calendar days in ``zone`` (default UTC) that fall in the period."""
    return adherence_of_micros(
        plan, {k: sorted(map(micros, v)) for k, v in readings.items()}, start, end, zone or ZoneInfo("UTC")
    )


def adherence_of_micros(
    plan: Plan, readings: Mapping[str, Sequence[int]], start: datetime, end: datetime, zone: ZoneInfo
) -> Adherence:
    """``adherence`` of readings given as microseconds since the epoch (``instants``), oldest first per measure:
    a window's count is two bisections, not a pass over the times (the worklist finishes 500 patients at once)."""
    if not plan.items:
        return Adherence(())
    items: list[ItemAdherence] = []
    first, last = micros(start), micros(end)
    all_days = _day_count(start, end, zone)
    for item in plan.items:
        times = readings.get(item.measure, ())
        step = item.every_days * DAY
        highs = [last - step * k for k in range(_count(start, end, item.every_days))]
        counts = [bisect_left(times, hi) - bisect_left(times, hi - step) for hi in highs]
        expected = item.times * len(highs)
        days_seen = local_ordinals(times[bisect_left(times, first) : bisect_left(times, last)], zone)
        items.append(
            ItemAdherence(
                measurement=item.measurement,
                expected=expected,
                received=sum(counts),
                days_with_reading=len(days_seen),
                days=all_days,
                short_windows=sum(1 for c in counts if c < item.times),
            )
        )
    return Adherence(tuple(items))


@lru_cache(maxsize=64)
def _day_count(start: datetime, end: datetime, zone: ZoneInfo) -> int:
    """How many local dates [start, end) touches (the same for every patient finished at one instant)."""
    return len(_days(start, end, zone))


def _day(t: datetime, zone: ZoneInfo | None) -> date:
    return t.astimezone(zone).date() if zone is not None else t.date()


def _days(start: datetime, end: datetime, zone: ZoneInfo | None) -> set[date]:
    if end <= start:
        return set()
    first, last = _day(start, zone), _day(end - timedelta(microseconds=1), zone)
    return {first + timedelta(days=k) for k in range((last - first).days + 1)}
