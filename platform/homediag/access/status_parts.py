"""The running parts of a patient's monitoring status (``MonitoringReads._status_of``): what its loop over the
readings (oldest first) has gathered, so that a reading that arrives after all of them is folded in without
looping over the patient's history again (the worklist's morning: every patient has one new reading).

Folding readings in order one batch after another gives the same parts as folding them all at once; the status is
then finished from the parts (adherence against the plan at the period's end). Monitoring decides the colours
(each reading's triage); this only gathers them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from homediag.monitoring import store
from homediag.monitoring.triage import Colour, worst


@dataclass
class StatusParts:
    """The parts gathered from the readings folded in so far: planned measures' times (all readings: the plan's
    windows look back), and of the readings of the period (from ``start`` on) the counts per colour, the worst
    colour and the worst not acknowledged, the reasons of those not green, how many are not acknowledged, and the
    latest reading per measure."""

    planned: frozenset[str]
    times: dict[str, list[datetime]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"red": 0, "yellow": 0, "green": 0})
    colour: Colour = Colour.GREEN
    open_colour: Colour = Colour.GREEN
    reasons: list[str] = field(default_factory=list)
    unacknowledged: int = 0
    latest: dict[str, store.TriagedReading] = field(default_factory=dict)

    def fold(self, readings: Iterable[store.TriagedReading], start: datetime) -> StatusParts:
        """Gather ``readings`` (oldest first, none before those folded already); returns self."""
        planned = self.planned
        for r in readings:
            if planned:
                for measure in {v.measure for v in r.values} & planned:
                    self.times.setdefault(measure, []).append(r.effective)
            if r.effective < start:
                continue
            result = r.result
            if result.triaged:
                self.counts[result.colour.value] += 1
                if result.colour is not Colour.GREEN:
                    self.reasons += result.reasons
                    self.colour = worst((self.colour, result.colour))
                    if not r.acknowledged:
                        self.open_colour = worst((self.open_colour, result.colour))
            if not r.acknowledged:
                self.unacknowledged += 1
            for v in r.values:
                self.latest[v.measure] = r
        return self

    def copy(self) -> StatusParts:
        """Parts to fold more readings into, leaving these as they are."""
        return StatusParts(
            self.planned,
            {k: list(v) for k, v in self.times.items()},
            dict(self.counts),
            self.colour,
            self.open_colour,
            list(self.reasons),
            self.unacknowledged,
            dict(self.latest),
        )
