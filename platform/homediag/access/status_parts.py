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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from homediag.monitoring import store
from homediag.monitoring.instants import DAY, local_ordinals, micros
from homediag.monitoring.plan import Plan
from homediag.monitoring.triage import Colour

# a plan item's windows step back from the period's end by at most 90 days (``PlanItem.check``): a planned
# measure's time further back than this before the period's start is in no window, now or later
_TIMES_KEPT = 90 * DAY
History = Sequence[store.SettingsVersion]
_SEVERITY = {Colour.GREEN: 0, Colour.BLUE: 1, Colour.YELLOW: 2, Colour.RED: 3}  # ``triage.worst``'s order


# a reading's (triaged, colour, acknowledged) as one letter: the period's readings are kept as columns (their
# instants, a string of these letters, their reasons), not an object per reading (a patient's parts hold a few dozen,
# and the worklist decodes and finishes 500 patients' parts in one view)
FLAGS = {
    (triaged, colour, acknowledged): chr(ord("a") + 8 * n + 2 * triaged + acknowledged)
    for n, colour in enumerate(Colour)
    for triaged in (False, True)
    for acknowledged in (False, True)
}
FLAGGED = {letter: flags for flags, letter in FLAGS.items()}


@dataclass
class Contributions:
    """What each reading of the period gives the status, as columns, oldest first: its time (microseconds since
    the epoch), a letter for whether it was triaged, its colour and whether acknowledged (``FLAGS``), and the
    reasons of its colour."""

    at: list[int] = field(default_factory=list)
    flags: str = ""
    reasons: list[tuple[str, ...]] = field(default_factory=list)

    def since(self, first: int) -> Contributions:
        """Those dated from ``first`` (microseconds) on: these when none is earlier."""
        if not self.at or self.at[0] >= first:
            return self
        n = bisect_left(self.at, first)
        return Contributions(self.at[n:], self.flags[n:], self.reasons[n:])

    def copy(self) -> Contributions:
        return Contributions(list(self.at), self.flags, list(self.reasons))


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
    period: Contributions = field(default_factory=Contributions)
    latest: dict[str, store.TriagedReading] = field(default_factory=dict)
    # the latest readings as kept, decoded when first needed (``latest_readings``): finishing the parts at a later
    # instant for the worklist needs only the period and the times, not the latest readings' values and verdicts
    # (given the patient's settings history when they were decoded without it: ``worklist_kept.decode_parts``)
    kept_latest: Callable[[History | None], dict[str, store.TriagedReading]] | None = field(
        default=None, compare=False, repr=False
    )

    def latest_readings(self, history: History | None = None) -> dict[str, store.TriagedReading]:
        """The latest reading per measure (whatever the start), decoded from the kept ones if not yet (with
        ``history``, the patient's settings history, when they were decoded without it)."""
        if self.kept_latest is not None:
            self.latest, self.kept_latest = self.kept_latest(history), None
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
        self.period = period = self.period.since(first)
        kept_from = first - _TIMES_KEPT
        for measure, times in self.times.items():
            if times and times[0] < kept_from:
                self.times[measure] = times[bisect_left(times, kept_from) :]
        added = []
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
            period.at.append(at)
            added.append(FLAGS[(result.triaged, result.colour, r.acknowledged)])
            period.reasons.append(tuple(result.reasons))
        if added:
            period.flags += "".join(added)
        return self

    def at(self, start: datetime, with_latest: bool = True) -> Period:
        """The parts of the period from ``start`` on (not before the last fold's); without the latest readings
        unless ``with_latest``."""
        counts = {"red": 0, "yellow": 0, "green": 0}
        colour = open_colour = Colour.GREEN
        reasons: list[str] = []
        unacknowledged = 0
        period = self.period.since(micros(start))
        severity = _SEVERITY
        for letter, why in zip(period.flags, period.reasons, strict=True):
            triaged, c, acknowledged = FLAGGED[letter]
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
        return Period(counts, colour, open_colour, reasons, unacknowledged, latest, period.at)

    def instants(self) -> list[int]:
        """The times of the readings the parts hold (the period's, and the planned measures' further back), in
        microseconds since the epoch."""
        return self.period.at + [t for v in self.times.values() for t in v]

    def copy(self, history: History | None = None) -> StatusParts:
        """Parts to fold more readings into, leaving these as they are (``history``: as ``latest_readings``)."""
        times = {k: list(v) for k, v in self.times.items()}
        return StatusParts(self.plan, times, self.period.copy(), dict(self.latest_readings(history)))

    def later(self, start: datetime) -> StatusParts:
        """These parts with what is dated before ``start`` dropped (``fold`` of no reading), sharing the lists that
        lose nothing with these (fold more readings into a ``copy``)."""
        later = StatusParts(self.plan, dict(self.times), self.period, self.latest, self.kept_latest)
        return later.fold((), start)
