"""FHIR search parameter parsing: dates with prefixes and precision, tokens, paging, sorting.

Parsing only; the access layer turns the result into SQL. Errors say which parameter is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from homediag.errors import BadRequest

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
NUMBER_PREFIXES = DATE_PREFIXES
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


@dataclass(frozen=True)
class QuantityParam:
    """A quantity parameter: prefix, the number as sent and the range its precision covers, and the unit."""

    prefix: str
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None
    code: str | None


def parse_quantity(raw: str, parameter: str) -> QuantityParam:
    """``[prefix]number[|system|code]`` (also ``number||code``)."""
    prefix = raw[:2] if raw[:2].isalpha() else "eq"
    text = raw[2:] if raw[:2].isalpha() else raw
    if prefix not in NUMBER_PREFIXES:
        raise SearchError(
            f"{parameter}: prefix '{prefix}' is not supported (use one of {', '.join(NUMBER_PREFIXES)})", parameter
        )
    number, system, code = (text.split("|", 2) + ["", ""])[:3] if "|" in text else (text, "", "")
    if not re.fullmatch(r"-?\d{1,12}(\.\d{1,12})?([eE][+-]?\d{1,3})?", number):
        raise SearchError(f"{parameter}: '{number[:40]}' is not a number", parameter)
    value = Decimal(number)
    exponent = value.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
    if "|" in text and not code:
        raise SearchError(f"{parameter}: '{text[:40]}' names no unit code after the system", parameter)
    return QuantityParam(prefix, value, value - half, value + half, system or None, code or None)


@dataclass
class ObservationQuery:
    patient_ids: list[str] = field(default_factory=list)
    codes: list[list[Token]] = field(default_factory=list)  # AND of ORs
    categories: list[list[Token]] = field(default_factory=list)
    not_codes: list[list[Token]] = field(default_factory=list)  # code:not (none of)
    not_categories: list[list[Token]] = field(default_factory=list)
    dates: list[DateRange] = field(default_factory=list)
    last_updated: list[DateRange] = field(default_factory=list)
    device_ids: list[str] = field(default_factory=list)
    ids: list[list[str]] = field(default_factory=list)  # _id: AND of ORs
    quantities: list[list[QuantityParam]] = field(default_factory=list)
    component_codes: list[list[Token]] = field(default_factory=list)
    component_quantities: list[list[QuantityParam]] = field(default_factory=list)
    combo_codes: list[list[Token]] = field(default_factory=list)  # code or a component's code
    missing: dict[str, bool] = field(default_factory=dict)  # parameter -> :missing=true|false
    count: int = 50
    offset: int = 0
    sort: str = "date"  # date | _lastUpdated | _id
    descending: bool = True
    summary: str | None = None  # count | true | data | false
    total: str = "accurate"  # none | estimate | accurate
    elements: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)  # patient | subject | device
    ignored: list[str] = field(default_factory=list)  # unknown parameters a lenient search ignored


OBSERVATION_PARAMETERS = (
    "patient",
    "subject",
    "code",
    "category",
    "date",
    "device",
    "value-quantity",
    "component-code",
    "component-value-quantity",
    "combo-code",
    "_id",
    "_lastUpdated",
    "_count",
    "_sort",
    "_offset",
    "_summary",
    "_total",
    "_elements",
    "_include",
    "_format",
    "_pretty",
)
# parameter -> its FHIR search parameter type (what the CapabilityStatement declares)
OBSERVATION_PARAMETER_TYPES = {
    "patient": "reference",
    "subject": "reference",
    "code": "token",
    "category": "token",
    "date": "date",
    "device": "reference",
    "value-quantity": "quantity",
    "component-code": "token",
    "component-value-quantity": "quantity",
    "combo-code": "token",
    "_id": "token",
    "_lastUpdated": "date",
}
SORTABLE = ("date", "_lastUpdated", "_id")
MISSING_ALLOWED = ("code", "category", "device", "value-quantity")
INCLUDES = {"Observation:patient": "patient", "Observation:subject": "subject", "Observation:device": "device"}
_SUMMARIES = ("true", "false", "count", "data")
# a client's way of asking how to count (fhirpy's .count() sends _totalMethod=count): the total is always exact
_TOTAL_METHODS = ("count", "estimate", "accurate", "none")


_WHOLE = re.compile(r"[0-9]{1,9}")


def parse_count(value: str, parameter: str) -> int:
    """A count or offset: ASCII digits, below a billion (a larger one is no page anyone can walk to)."""
    if not _WHOLE.fullmatch(value):
        raise SearchError(f"{parameter}: '{value[:40]}' is not a whole number from 0 to 999999999", parameter)
    return int(value)


def _unknown(name: str) -> SearchError:
    hint = (
        " (_revinclude, chained and _has searches are not supported)"
        if name.startswith(("_include", "_revinclude", "_has")) or "." in name or ":" in name
        else ""
    )
    return SearchError(f"unknown search parameter '{name}'{hint}; supported: {', '.join(OBSERVATION_PARAMETERS)}", name)


def parse_observation_query(
    items: list[tuple[str, str]],
    zone: ZoneInfo,
    default_count: int,
    max_count: int,
    max_values: int = MAX_VALUES,
    *,
    lenient: bool = False,
) -> ObservationQuery:
    """The query of ``items``. Strict (the default): an unknown parameter is a 400. Lenient
    (``Prefer: handling=lenient``): it is ignored and named in ``ignored``; a known parameter with a value
    that cannot be read is a 400 either way."""
    q = ObservationQuery(count=default_count)
    seen: dict[str, int] = {}
    for raw_name, value in items:
        seen[raw_name] = seen.get(raw_name, 0) + value.count(",") + 1
        if seen[raw_name] > max_values:
            raise SearchError(
                f"{raw_name}: more than the {max_values} values a search may give one parameter", raw_name
            )
        name, _, modifier = raw_name.partition(":")
        try:
            _parse_one(q, name, modifier, raw_name, value, zone, max_count)
        except _Unknown:
            if not lenient:
                raise _unknown(raw_name) from None
            q.ignored.append(raw_name)
    if len(set(q.patient_ids)) > 1:
        raise SearchError("patient: more than one patient given; repeat the search per patient", "patient")
    if q.summary == "count":
        q.count = 0
    return q


class _Unknown(Exception):
    pass


def _parse_one(  # noqa: C901 - one branch per parameter
    q: ObservationQuery, name: str, modifier: str, raw_name: str, value: str, zone: ZoneInfo, max_count: int
) -> None:
    if modifier == "missing":
        if name not in MISSING_ALLOWED:
            raise _Unknown
        if value not in ("true", "false"):
            raise SearchError(f"{raw_name}: 'true' or 'false', not '{value[:40]}'", raw_name)
        q.missing[name] = value == "true"
        return
    if modifier == "not" and name in ("code", "category"):
        (q.not_codes if name == "code" else q.not_categories).append(parse_tokens(value, raw_name))
        return
    if modifier:
        raise _Unknown
    if name in ("patient", "subject"):
        q.patient_ids.append(parse_reference(value, "Patient", name))
    elif name == "code":
        q.codes.append(parse_tokens(value, name))
    elif name == "category":
        q.categories.append(parse_tokens(value, name))
    elif name == "date":
        q.dates.append(parse_date(value, zone))
    elif name == "_lastUpdated":
        q.last_updated.append(parse_date(value, zone, name))
    elif name == "device":
        q.device_ids.append(parse_reference(value, "Device", name))
    elif name == "value-quantity":
        q.quantities.append([parse_quantity(v, name) for v in value.split(",")])
    elif name == "component-value-quantity":
        q.component_quantities.append([parse_quantity(v, name) for v in value.split(",")])
    elif name == "component-code":
        q.component_codes.append(parse_tokens(value, name))
    elif name == "combo-code":
        q.combo_codes.append(parse_tokens(value, name))
    elif name == "_id":
        ids = [v for v in value.split(",")]
        for v in ids:
            if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", v):
                raise SearchError(f"_id: '{v[:40]}' is not a valid resource id", name)
        q.ids.append(ids)
    elif name == "_count":
        q.count = min(parse_count(value, name), max_count)
    elif name == "_offset":
        q.offset = parse_count(value, name)
    elif name == "_sort":
        field_name = value.removeprefix("-")
        if field_name not in SORTABLE or "," in value:
            raise SearchError(f"_sort: one of {', '.join(SORTABLE)} (with '-' for descending), not '{value}'", name)
        q.sort, q.descending = field_name, value.startswith("-")
    elif name == "_summary":
        if value not in _SUMMARIES:
            raise SearchError(f"_summary: one of {', '.join(_SUMMARIES)}, not '{value[:40]}'", name)
        q.summary = value
    elif name == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise SearchError(f"_total: one of none, estimate, accurate, not '{value[:40]}'", name)
        q.total = value
    elif name == "_totalMethod":
        if value not in _TOTAL_METHODS:
            raise SearchError(f"_totalMethod: one of {', '.join(_TOTAL_METHODS)}, not '{value[:40]}'", name)
    elif name == "_elements":
        q.elements += [e.strip() for e in value.split(",") if e.strip()]
    elif name == "_include":
        if value not in INCLUDES:
            raise SearchError(f"_include: one of {', '.join(INCLUDES)}, not '{value[:60]}'", name)
        q.includes.append(INCLUDES[value])
    elif name in ("_format", "_pretty"):
        pass  # taken care of by content negotiation (api/negotiation.py)
    else:
        raise _Unknown
