"""FHIR search parameter parsing: dates with prefixes and precision, tokens, paging, sorting.

Parsing only; the access layer turns the result into SQL. Errors say which parameter is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from homediag.errors import BadRequest

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le")
# ASCII digits only (``\d`` would take any script's digits); the offset at most 14 hours, as FHIR's
_DATE = re.compile(
    r"^(?P<y>[0-9]{4})(-(?P<m>[0-9]{2})(-(?P<d>[0-9]{2})(T(?P<H>[0-9]{2}):(?P<M>[0-9]{2})(:(?P<S>[0-9]{2})"
    r"(?P<f>\.[0-9]{1,9})?)?(?P<tz>Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)?)?)?)?$"
)
MIN_YEAR, MAX_YEAR = 1, 9998  # a range around a date must still be a date


class SearchError(BadRequest):
    """A search parameter that cannot be understood (HTTP 400)."""

    def __init__(self, message: str, parameter: str) -> None:
        self.parameter = parameter
        super().__init__(message, parameter)


@dataclass(frozen=True)
class DateRange:
    """A date parameter: prefix and the half-open range [low, high) its precision covers."""

    prefix: str
    low: datetime
    high: datetime


def _add_months(value: datetime, months: int) -> datetime:
    month = value.month - 1 + months
    return value.replace(year=value.year + month // 12, month=month % 12 + 1)


def parse_date(raw: str, zone: ZoneInfo, parameter: str = "date") -> DateRange:
    prefix = raw[:2] if raw[:2].isalpha() else "eq"
    text = raw[2:] if raw[:2].isalpha() else raw
    if prefix not in DATE_PREFIXES:
        raise SearchError(
            f"{parameter}: prefix '{prefix}' is not supported (use one of {', '.join(DATE_PREFIXES)})", parameter
        )
    match = _DATE.match(text)
    if not match:
        raise SearchError(
            f"{parameter}: '{text}' is not a FHIR date or dateTime (YYYY, YYYY-MM, YYYY-MM-DD or "
            "YYYY-MM-DDThh:mm[:ss][Z|+hh:mm])",
            parameter,
        )
    g = match.groupdict()
    if not MIN_YEAR <= int(g["y"]) <= MAX_YEAR:
        raise SearchError(f"{parameter}: the year {g['y']} is outside {MIN_YEAR:04d}–{MAX_YEAR}", parameter)
    tz = zone
    if g["tz"]:
        tz = ZoneInfo("UTC") if g["tz"] == "Z" else None  # type: ignore[assignment]
    try:
        low = datetime(
            int(g["y"]),
            int(g["m"] or 1),
            int(g["d"] or 1),
            int(g["H"] or 0),
            int(g["M"] or 0),
            int(g["S"] or 0),
            int(float(g["f"] or 0) * 1_000_000),
        )
    except ValueError as exc:
        raise SearchError(f"{parameter}: '{text}' is not a valid date ({exc})", parameter) from None
    if g["tz"] and g["tz"] != "Z":
        low = datetime.fromisoformat(f"{low.isoformat()}{g['tz']}")
    else:
        low = low.replace(tzinfo=tz)
    try:
        if g["f"] or g["S"]:
            high = low + timedelta(seconds=1) if not g["f"] else low + timedelta(microseconds=1)
        elif g["M"]:
            high = low + timedelta(minutes=1)
        elif g["d"]:
            high = (low.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=low.tzinfo)
        elif g["m"]:
            high = _add_months(low, 1)
        else:
            high = low.replace(year=low.year + 1)
        low.astimezone(UTC), high.astimezone(UTC)  # the store compares in UTC: it must exist there
    except (ValueError, OverflowError):
        raise SearchError(
            f"{parameter}: '{text}' is too close to the ends of the calendar to search", parameter
        ) from None
    return DateRange(prefix, low, high)


@dataclass(frozen=True)
class Token:
    system: str | None  # None: any system; "": no system
    code: str


MAX_VALUES = 100
"""Most values a search may give one parameter (comma-separated and repeated together)."""


def parse_tokens(raw: str, parameter: str, max_values: int = MAX_VALUES) -> list[Token]:
    """``system|code``, ``|code`` (no system), or bare ``code``; a comma means OR."""
    tokens = []
    parts = raw.split(",")
    if len(parts) > max_values:
        raise SearchError(f"{parameter}: {len(parts)} values, more than the {max_values} a search may give", parameter)
    for part in parts:
        if not part:
            raise SearchError(f"{parameter}: empty value", parameter)
        if "|" in part:
            system, code = part.split("|", 1)
            if not code:
                raise SearchError(f"{parameter}: '{part}' names a system but no code", parameter)
            tokens.append(Token(system, code))  # "" (from "|code"): only codings without a system
        else:
            tokens.append(Token(None, part))
    return tokens


def parse_reference(raw: str, resource_type: str, parameter: str) -> str:
    """``Patient/123`` or ``123`` -> ``123``."""
    value = raw
    if "/" in raw:
        kind, _, value = raw.rpartition("/")
        if kind.split("/")[-1] != resource_type:
            raise SearchError(f"{parameter}: expected a {resource_type} reference, got '{raw}'", parameter)
    if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", value):
        raise SearchError(f"{parameter}: '{raw}' is not a valid resource id", parameter)
    return value


@dataclass
class ObservationQuery:
    patient_ids: list[str] = field(default_factory=list)
    codes: list[list[Token]] = field(default_factory=list)  # AND of ORs
    categories: list[list[Token]] = field(default_factory=list)
    dates: list[DateRange] = field(default_factory=list)
    device_ids: list[str] = field(default_factory=list)
    count: int = 50
    offset: int = 0
    descending: bool = True


OBSERVATION_PARAMETERS = (
    "patient",
    "subject",
    "code",
    "category",
    "date",
    "device",
    "_count",
    "_sort",
    "_offset",
    "_format",
)


_WHOLE = re.compile(r"[0-9]{1,9}")


def parse_count(value: str, parameter: str) -> int:
    """A count or offset: ASCII digits, below a billion (a larger one is no page anyone can walk to)."""
    if not _WHOLE.fullmatch(value):
        raise SearchError(f"{parameter}: '{value[:40]}' is not a whole number from 0 to 999999999", parameter)
    return int(value)


def parse_observation_query(
    items: list[tuple[str, str]], zone: ZoneInfo, default_count: int, max_count: int, max_values: int = MAX_VALUES
) -> ObservationQuery:
    q = ObservationQuery(count=default_count)
    seen: dict[str, int] = {}
    for name, value in items:
        seen[name] = seen.get(name, 0) + value.count(",") + 1
        if seen[name] > max_values:
            raise SearchError(f"{name}: more than the {max_values} values a search may give one parameter", name)
        if name in ("patient", "subject"):
            q.patient_ids.append(parse_reference(value, "Patient", name))
        elif name == "code":
            q.codes.append(parse_tokens(value, name))
        elif name == "category":
            q.categories.append(parse_tokens(value, name))
        elif name == "date":
            q.dates.append(parse_date(value, zone))
        elif name == "device":
            q.device_ids.append(parse_reference(value, "Device", name))
        elif name == "_count":
            q.count = min(parse_count(value, name), max_count)
        elif name == "_offset":
            q.offset = parse_count(value, name)
        elif name == "_sort":
            if value not in ("date", "-date"):
                raise SearchError(f"_sort: only 'date' and '-date' are supported, not '{value}'", name)
            q.descending = value == "-date"
        elif name == "_format":
            if value not in ("json", "application/json", "application/fhir+json"):
                raise SearchError(f"_format: only JSON is served, not '{value}'", name)
        else:
            hint = (
                " (_include, chained and _has searches are not supported)"
                if name.startswith(("_include", "_revinclude", "_has")) or "." in name or ":" in name
                else ""
            )
            raise SearchError(
                f"unknown search parameter '{name}'{hint}; supported: {', '.join(OBSERVATION_PARAMETERS)}", name
            )
    if len(set(q.patient_ids)) > 1:
        raise SearchError("patient: more than one patient given; repeat the search per patient", "patient")
    return q
