"""The running parts of a patient's monitoring status (``MonitoringReads._status_of``): what its loop over the
readings (oldest first) has gathered, so that a reading that arrives after all of them is folded in without
looping over the patient's history again (the worklist's morning: every patient has one new reading), and so that
the status can be finished at any later instant without reading the history (the next morning: the period has moved
on, readings have left it, a new day has begun).

The parts keep, of each reading of the period, what it gives the status (``Contribution``: its time, colour,
reasons, whether acknowledged), the latest reading per measure, and the planned measures' times; the status of a
period starting at ``start`` is finished from those dated from ``start`` on (``at``). A period only moves forward,
so a reading that has left it is dropped for good. Folding readings in order one batch after another gives the same
parts as folding them all at once. Monitoring decides the colours (each reading's triage); this only gathers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from homediag.monitoring import store
from homediag.monitoring.plan import Plan
from homediag.monitoring.triage import Colour, worst

# a plan item's windows step back from the period's end by at most 90 days (``PlanItem.check``): a planned
# measure's time further back than this before the period's start is in no window, now or later
_TIMES_KEPT = timedelta(days=90)


class Contribution(NamedTuple):
    """What one reading of the period gives the status (a tuple: a patient's parts hold a few dozen, and a view
    may read 500 patients' parts from the store)."""

    effective: datetime
    triaged: bool
    colour: Colour
    reasons: tuple[str, ...]
    acknowledged: bool


@dataclass(frozen=True)
class Period:
    """The parts of the readings dated from a period's start on: counts per colour, the worst colour and the worst
    not acknowledged, the reasons of those not green, how many are not acknowledged, the latest reading per
    measure, and their times (for the days measured)."""

    counts: dict[str, int]
    colour: Colour
    open_colour: Colour
    reasons: list[str]
    unacknowledged: int
    latest: dict[str, store.TriagedReading]
    times: list[datetime]

    def days(self, zone: ZoneInfo) -> frozenset[date]:
        """The local dates measured."""
        return frozenset(t.astimezone(zone).date() for t in self.times)


@dataclass
class StatusParts:
    """The parts gathered from the readings folded in so far: the plan (in force when gathered), its measures'
    times, the contributions of the readings from the last ``start`` folded with on, and the latest reading per
    measure."""

    plan: Plan
    times: dict[str, list[datetime]] = field(default_factory=dict)
    period: list[Contribution] = field(default_factory=list)
    latest: dict[str, store.TriagedReading] = field(default_factory=dict)

    @property
    def planned(self) -> frozenset[str]:
        return frozenset(item.measure for item in self.plan.items)

    def fold(self, readings: Iterable[store.TriagedReading], start: datetime) -> StatusParts:
        """Gather ``readings`` (oldest first, none before those folded already), dropping what is before ``start``
        (not before an earlier fold's); returns self."""
        planned = self.planned
        if self.period and self.period[0].effective < start:
            self.period = [c for c in self.period if c.effective >= start]
        for measure, times in self.times.items():
            if times and times[0] < start - _TIMES_KEPT:
                self.times[measure] = [t for t in times if t >= start - _TIMES_KEPT]
        for r in readings:
            if planned:
                for measure in {v.measure for v in r.values} & planned:
                    self.times.setdefault(measure, []).append(r.effective)
            for v in r.values:
                self.latest[v.measure] = r
            if r.effective < start:
                continue
            result = r.result
            self.period.append(
                Contribution(r.effective, result.triaged, result.colour, tuple(result.reasons), r.acknowledged)
            )
        return self

    def at(self, start: datetime) -> Period:
        """The parts of the period from ``start`` on (not before the last fold's)."""
        counts = {"red": 0, "yellow": 0, "green": 0}
        colour = open_colour = Colour.GREEN
        reasons: list[str] = []
        unacknowledged = 0
        times: list[datetime] = []
        for c in self.period:
            if c.effective < start:
                continue
            times.append(c.effective)
            if c.triaged:
                counts[c.colour.value] += 1
                if c.colour is not Colour.GREEN:
                    reasons += c.reasons
                    colour = worst((colour, c.colour))
                    if not c.acknowledged:
                        open_colour = worst((open_colour, c.colour))
            if not c.acknowledged:
                unacknowledged += 1
        latest = {k: r for k, r in self.latest.items() if r.effective >= start}
        return Period(counts, colour, open_colour, reasons, unacknowledged, latest, times)

    def instants(self) -> list[datetime]:
        """The times of the readings the parts hold (the period's, and the planned measures' further back)."""
        return [c.effective for c in self.period] + [t for v in self.times.values() for t in v]

    def copy(self) -> StatusParts:
        """Parts to fold more readings into, leaving these as they are."""
        return StatusParts(self.plan, {k: list(v) for k, v in self.times.items()}, list(self.period), dict(self.latest))
