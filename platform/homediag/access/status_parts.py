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

The instants of the period's readings and of the planned measures are whole microseconds since the epoch
(``monitoring.instants``): the worklist finishes 500 patients' parts in one view, and an ``int`` is decoded,
compared and turned into a local date without a datetime per reading.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo

from homediag.monitoring import store
from homediag.monitoring.instants import DAY, local_ordinals, micros
from homediag.monitoring.plan import Plan
from homediag.monitoring.triage import Colour

# a plan item's windows step back from the period's end by at most 90 days (``PlanItem.check``): a planned
# measure's time further back than this before the period's start is in no window, now or later
_TIMES_KEPT = 90 * DAY
_SEVERITY = {Colour.GREEN: 0, Colour.BLUE: 1, Colour.YELLOW: 2, Colour.RED: 3}  # ``triage.worst``'s order
_EFFECTIVE = itemgetter(0)


class Contribution(NamedTuple):
    """What one reading of the period gives the status (a tuple: a patient's parts hold a few dozen, and a view
    may read 500 patients' parts from the store)."""

    effective: int  # microseconds since the epoch
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
    times: list[int]  # microseconds since the epoch

    def days(self, zone: ZoneInfo) -> frozenset[date]:
        """The local dates measured."""
        return frozenset(map(date.fromordinal, local_ordinals(self.times, zone)))


@dataclass
class StatusParts:
    """The parts gathered from the readings folded in so far: the plan (in force when gathered), its measures'
    times, the contributions of the readings from the last ``start`` folded with on, and the latest reading per
    measure."""

    plan: Plan
    times: dict[str, list[int]] = field(default_factory=dict)  # microseconds since the epoch, oldest first
    period: list[Contribution] = field(default_factory=list)
    latest: dict[str, store.TriagedReading] = field(default_factory=dict)
    # the latest readings as kept, decoded when first needed (``latest_readings``): finishing the parts at a later
    # instant for the worklist needs only the period and the times, not the latest readings' values and verdicts
    kept_latest: Callable[[], dict[str, store.TriagedReading]] | None = field(default=None, compare=False, repr=False)

    def latest_readings(self) -> dict[str, store.TriagedReading]:
        """The latest reading per measure (whatever the start), decoded from the kept ones if not yet."""
        if self.kept_latest is not None:
            self.latest, self.kept_latest = self.kept_latest(), None
        return self.latest

    @property
    def planned(self) -> frozenset[str]:
        return frozenset(item.measure for item in self.plan.items)

    def fold(self, readings: Iterable[store.TriagedReading], start: datetime) -> StatusParts:
        """Gather ``readings`` (oldest first, none before those folded already), dropping what is before ``start``
        (not before an earlier fold's); returns self."""
        planned = self.planned
        first = micros(start)
        latest = self.latest_readings() if readings else self.latest
        if self.period and self.period[0].effective < first:
            self.period = self.period[bisect_left(self.period, first, key=_EFFECTIVE) :]
        kept_from = first - _TIMES_KEPT
        for measure, times in self.times.items():
            if times and times[0] < kept_from:
                self.times[measure] = times[bisect_left(times, kept_from) :]
        for r in readings:
            at = micros(r.effective)
            if planned:
                for measure in {v.measure for v in r.values} & planned:
                    self.times.setdefault(measure, []).append(at)
            for v in r.values:
                latest[v.measure] = r
            if at < first:
                continue
            result = r.result
            self.period.append(Contribution(at, result.triaged, result.colour, tuple(result.reasons), r.acknowledged))
        return self

    def at(self, start: datetime, with_latest: bool = True) -> Period:
        """The parts of the period from ``start`` on (not before the last fold's); without the latest readings
        unless ``with_latest``."""
        counts = {"red": 0, "yellow": 0, "green": 0}
        colour = open_colour = Colour.GREEN
        reasons: list[str] = []
        unacknowledged = 0
        first = micros(start)
        period = self.period
        if period and period[0].effective < first:
            period = period[bisect_left(period, first, key=_EFFECTIVE) :]
        severity = _SEVERITY
        for _, triaged, c, why, acknowledged in period:
            if triaged:
                counts[c._value_] += 1
                if c is not Colour.GREEN:
                    reasons += why
                    rank = severity[c]
                    if rank > severity[colour]:
                        colour = c
                    if not acknowledged and rank > severity[open_colour]:
                        open_colour = c
            if not acknowledged:
                unacknowledged += 1
        latest = {k: r for k, r in self.latest_readings().items() if r.effective >= start} if with_latest else {}
        return Period(counts, colour, open_colour, reasons, unacknowledged, latest, list(map(_EFFECTIVE, period)))

    def instants(self) -> list[int]:
        """The times of the readings the parts hold (the period's, and the planned measures' further back), in
        microseconds since the epoch."""
        return [c.effective for c in self.period] + [t for v in self.times.values() for t in v]

    def copy(self) -> StatusParts:
        """Parts to fold more readings into, leaving these as they are."""
        times = {k: list(v) for k, v in self.times.items()}
        return StatusParts(self.plan, times, list(self.period), dict(self.latest_readings()))

    def later(self, start: datetime) -> StatusParts:
        """These parts with what is dated before ``start`` dropped (``fold`` of no reading), sharing the lists that
        lose nothing with these (fold more readings into a ``copy``)."""
        later = StatusParts(self.plan, dict(self.times), self.period, self.latest, self.kept_latest)
        return later.fold((), start)
