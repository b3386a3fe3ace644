"""Sets of instants as sorted, disjoint half-open intervals ``[start, end)``.

The decision works on sets of data times: what a consent permits, minus what any consent denies.
Keeping them as exact interval sets (not just outer bounds) means a nested deny that cuts a hole
in a permitted data period stays a hole when the access layer narrows its SQL query.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

# Stand-ins for minus and plus infinity, so that the arithmetic has no None cases.
MIN = datetime.min.replace(tzinfo=UTC)
MAX = datetime.max.replace(tzinfo=UTC)

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class IntervalSet:
    """A union of half-open intervals; ``spans`` is sorted, disjoint and has no empty span."""

    spans: tuple[Span, ...] = ()

    @classmethod
    def of(cls, start: datetime | None = None, end: datetime | None = None) -> IntervalSet:
        """``[start, end)``; None stands for unbounded on that side."""
        return cls._normalised([(MIN if start is None else start, MAX if end is None else end)])

    @classmethod
    def _normalised(cls, spans: Iterable[Span]) -> IntervalSet:
        merged: list[Span] = []
        for start, end in sorted(s for s in spans if s[0] < s[1]):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return cls(tuple(merged))

    def is_empty(self) -> bool:
        return not self.spans

    def __contains__(self, instant: datetime) -> bool:
        return any(start <= instant < end for start, end in self.spans)

    def __or__(self, other: IntervalSet) -> IntervalSet:
        if not other.spans:
            return self
        if not self.spans:
            return other
        return IntervalSet._normalised(self.spans + other.spans)

    def __and__(self, other: IntervalSet) -> IntervalSet:
        return IntervalSet._normalised((max(a0, b0), min(a1, b1)) for a0, a1 in self.spans for b0, b1 in other.spans)

    def __sub__(self, other: IntervalSet) -> IntervalSet:
        if not other.spans or not self.spans:
            return self
        remaining = list(self.spans)
        for cut_start, cut_end in other.spans:
            next_remaining: list[Span] = []
            for start, end in remaining:
                if cut_end <= start or end <= cut_start:
                    next_remaining.append((start, end))
                    continue
                if start < cut_start:
                    next_remaining.append((start, cut_start))
                if cut_end < end:
                    next_remaining.append((cut_end, end))
            remaining = next_remaining
        return IntervalSet._normalised(remaining)


EMPTY = IntervalSet()
EVERYTHING = IntervalSet.of()
