"""FHIR ``date``/``dateTime`` values as the span of instants they denote.

A FHIR dateTime may be a year, a year-month, a date or an instant with an offset. A value without a
time has no offset; here it is read as Europe/Copenhagen local time, the pilot's wall clock. So a
consent period ending "2026-12-31" covers the whole of that day in Copenhagen and ends at the first
instant of 2027-01-01 there (23:00 UTC on 2026-12-31). Reading it as UTC, or as "midnight at the
start of the end day", is the off-by-one-day error this module exists to avoid.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

COPENHAGEN = ZoneInfo("Europe/Copenhagen")

# The R4 dateTime grammar: seconds are required once a time is given, and then so is an offset.
_DATETIME = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<offset>Z|[+-]\d{2}:\d{2}))?)?)?"
)
# The same with the offset optional: what devices and gateways send when their clock has no zone.
_LOCAL_DATETIME = re.compile(
    _DATETIME.pattern.replace(r"(?P<offset>Z|[+-]\d{2}:\d{2}))", r"(?P<offset>Z|[+-]\d{2}:\d{2})?)")
)


def require_aware(value: datetime, name: str) -> datetime:
    """Return ``value``; raise ValueError when it has no UTC offset (a naive time is ambiguous)."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value


def is_instant(text: str) -> bool:
    """True when ``text`` carries a time of day (and so an offset), not only a date."""
    return "T" in text


def first_instant(text: str) -> datetime:
    """The first instant ``text`` denotes (in UTC): the instant itself, or 00:00 Copenhagen of its
    first day."""
    match = _match(text)
    if match["hour"] is not None:
        return _instant(match)
    year, month, day = int(match["year"]), int(match["month"] or 1), int(match["day"] or 1)
    return _midnight(year, month, day)


def end_instant(text: str) -> datetime:
    """Where a period ending at ``text`` stops (exclusive, in UTC).

    An instant ends the period at that instant. A date, month or year ends it at 00:00 Copenhagen
    of the following day, month or year, so the whole of the last day is inside.
    """
    match = _match(text)
    if match["hour"] is not None:
        return _instant(match)
    year = int(match["year"])
    if match["month"] is None:
        return _midnight(year + 1, 1, 1)
    month = int(match["month"])
    if match["day"] is None:
        return _midnight(year + month // 12, month % 12 + 1, 1)
    # Midnight exists every day in Copenhagen (DST switches at 02:00/03:00), so date arithmetic
    # on the calendar day is safe.
    last_day = date(year, month, int(match["day"]))
    if last_day == date.max:
        return _END_OF_TIME
    following = last_day + timedelta(days=1)
    return _midnight(following.year, following.month, following.day)


# "9999-12-31" (or "9999") as an end means "no end"; there is no following day to end at.
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)


def _midnight(year: int, month: int, day: int) -> datetime:
    if year > 9999:
        return _END_OF_TIME
    # Results are kept in UTC: Python compares two datetimes sharing one ZoneInfo by wall clock,
    # which is wrong across a DST change; datetimes in different zones compare as instants.
    try:
        return datetime(year, month, day, tzinfo=COPENHAGEN).astimezone(UTC)
    except OverflowError:  # 0001-01-01 00:00 Copenhagen is before datetime.min in UTC
        return datetime.min.replace(tzinfo=UTC)


def _match(text: str) -> re.Match[str]:
    match = _DATETIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a FHIR dateTime: {text!r}")
    # Let datetime check the calendar (month 13, 30 February, ...).
    datetime(int(match["year"]), int(match["month"] or 1), int(match["day"] or 1))
    return match


def _instant(match: re.Match[str]) -> datetime:
    second = int(match["second"])
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    microsecond = int(fraction)
    if second == 60:  # a leap second: the last representable instant of that minute
        second, microsecond = 59, 999_999
    offset = match["offset"]
    text = (
        f"{match['year']}-{match['month']}-{match['day']}T{match['hour']}:{match['minute']}:"
        f"{second:02d}.{microsecond:06d}{'+00:00' if offset == 'Z' else offset}"
    )
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+14:00 is before datetime.min in UTC
        raise ValueError(f"dateTime out of range: {text}") from exc


def local_instant(text: object, zone: tzinfo = COPENHAGEN) -> datetime | None:
    """A dateTime or instant with a time of day as an aware datetime, its offset kept as sent; a time sent
    without an offset is read in ``zone`` (a device's local clock). None for a date alone or anything
    that is not a dateTime."""
    match = _LOCAL_DATETIME.fullmatch(text) if isinstance(text, str) else None
    if match is None or match["hour"] is None:
        return None
    second = int(match["second"])
    microsecond = int((match["fraction"] or "")[:6].ljust(6, "0"))
    if second == 60:  # a leap second: the last representable instant of that minute
        second, microsecond = 59, 999_999
    offset = match["offset"]
    if offset is None:
        tz: tzinfo = zone
    elif offset == "Z":
        tz = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        return datetime(
            int(match["year"]), int(match["month"]), int(match["day"]),
            int(match["hour"]), int(match["minute"]), second, microsecond, tzinfo=tz,
        )  # fmt: skip
    except ValueError:
        return None


def local_span(text: str, zone: tzinfo = COPENHAGEN) -> tuple[datetime, datetime]:
    """The first and the last instant (inclusive, to the microsecond) a date or dateTime covers: an instant
    is both, its offset kept as sent; a year, month or date covers its whole span of ``zone``'s wall
    clock. Raises ValueError for anything that is not a dateTime."""
    instant = local_instant(text, zone)
    if instant is not None:
        return instant, instant
    match = _LOCAL_DATETIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a FHIR dateTime: {text!r}")
    year = int(match["year"])
    if match["month"] is None:
        start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    elif match["day"] is None:
        month = int(match["month"])
        start, end = datetime(year, month, 1), datetime(year + month // 12, month % 12 + 1, 1)
    else:
        start = datetime(year, int(match["month"]), int(match["day"]))
        end = start + timedelta(days=1)
    return start.replace(tzinfo=zone), (end - timedelta(microseconds=1)).replace(tzinfo=zone)
