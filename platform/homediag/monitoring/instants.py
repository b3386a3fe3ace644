"""Instants as whole microseconds since the Unix epoch (UTC), and their local dates, for the code that handles many
of them per view: a status's running parts (``access.status_parts``) hold each reading of the period and the
planned measures' times back 90 days, and the worklist finishes 500 patients' parts at once. An ``int`` is read
from JSON, compared, subtracted and divided without making an object per reading; a datetime is made only where
one is shown. Exact: the same arithmetic as ``datetime`` and ``timedelta`` (microseconds). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SECOND = 1_000_000
HOUR = 3_600 * SECOND
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# time zone -> UTC day (since the epoch) -> the zone's UTC offset through that day, in microseconds; only days with
# the same offset at their first and last microsecond (the days a clock change falls in are converted one by one)
_OFFSETS: dict[ZoneInfo, dict[int, int]] = {}
_OFFSETS_LIMIT = 100_000


def micros(t: datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    d = t - EPOCH
    return (d.days * 86_400 + d.seconds) * SECOND + d.microseconds


def span(d: timedelta) -> int:
    """A timedelta in microseconds."""
    return (d.days * 86_400 + d.seconds) * SECOND + d.microseconds


def instant(us: int) -> datetime:
    """Microseconds since the epoch as an aware datetime (UTC)."""
    return EPOCH + timedelta(microseconds=us)


def _offset(us: int, zone: ZoneInfo) -> int:
    found = instant(us).astimezone(zone).utcoffset()
    return span(found) if found is not None else 0


def local_ordinal(us: int, zone: ZoneInfo) -> int:
    """The proleptic Gregorian ordinal of the local date in ``zone`` of the instant ``us`` (``date.toordinal`` of
    ``instant(us).astimezone(zone).date()``), from the zone's offset through the instant's UTC day, remembered."""
    offsets = _OFFSETS.get(zone)
    if offsets is None:
        offsets = _OFFSETS[zone] = {}
    day = us // DAY
    offset = offsets.get(day)
    if offset is None:
        first, last = _offset(day * DAY, zone), _offset(day * DAY + DAY - 1, zone)
        if first != last:  # a clock change on this day
            return instant(us).astimezone(zone).date().toordinal()
        if len(offsets) >= _OFFSETS_LIMIT:
            offsets.clear()
        offset = offsets[day] = first
    return (us + offset) // DAY + _EPOCH_ORDINAL


def local_ordinals(times: Iterable[int], zone: ZoneInfo) -> set[int]:
    """``local_ordinal`` of each of ``times``: the local dates they fall on, as ordinals."""
    offsets = _OFFSETS.get(zone)
    if offsets is None:
        offsets = _OFFSETS[zone] = {}
    out: set[int] = set()
    for us in times:
        offset = offsets.get(us // DAY)
        out.add((us + offset) // DAY + _EPOCH_ORDINAL if offset is not None else local_ordinal(us, zone))
    return out
