"""A Bulk Data kick-off request (Bulk Data Access IG 2.0): the level, the resource types, ``_since``, the
output format, ``_typeFilter`` (Observation, with the Observation search's parameters), ``_elements`` and,
in a POST kick-off's ``Parameters`` body, ``patient`` (Patient and Group level). What is not supported is
refused with a 400 naming it, unless the client sent ``Prefer: handling=lenient``; a value that cannot be
read is a 400 either way. Which patients a ``patient`` reference reaches is the access layer's decision
(``access/export.py``): here it is only read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from homediag.clock import to_store
from homediag.errors import BadRequest
from homediag.search_params import parse_observation_query

# What an export can hold: the pseudonymous Patient and its Observations.
SUPPORTED_TYPES = ("Patient", "Observation")
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
ACCEPTED = frozenset({"", "*/*", "application/fhir+json", "application/json"})
PARAMETERS = ("_type", "_since", "_outputFormat", "_typeFilter", "_elements", "patient")
# the resource types a _typeFilter may be about, and the search parameters it may not hold (they shape a page
# of a search, not which resources are exported)
FILTERED_TYPES = ("Observation",)
NOT_IN_TYPE_FILTER = frozenset(
    {"_count", "_sort", "_offset", "_summary", "_total", "_totalMethod", "_elements", "_include", "_format", "_pretty"}
)
PARAMETER_VALUES = {  # a Parameters body's parameter -> the value[x] it is given in
    "_outputFormat": "valueString",
    "_since": "valueInstant",
    "_type": "valueString",
    "_typeFilter": "valueString",
    "_elements": "valueString",
    "patient": "valueReference",
    "includeAssociatedData": "valueCode",
}
_ELEMENT = re.compile(r"^(?:(Patient|Observation)\.)?([a-z][A-Za-z0-9]{0,63})$")
_PATIENT_REFERENCE = re.compile(r"^Patient/([A-Za-z0-9\-.]{1,64})$")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
_PILOT = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class ExportRequest:
    level: str  # system | patient | group
    group_id: str | None
    types: tuple[str, ...]
    since: datetime | None  # naive UTC
    request_url: str
    # Observation _typeFilter queries (the part after "Observation?"); several are ORed
    type_filters: tuple[str, ...] = ()
    # _elements: (resource type or None for every type, element)
    elements: tuple[tuple[str | None, str], ...] = ()
    # POST's patient references: the ids as the caller gave them (its pseudonyms); None: not narrowed
    patients: tuple[str, ...] | None = field(default=None)


def parse_kickoff(
    level: str,
    group_id: str | None,
    items: list[tuple[str, str]],
    headers: dict[str, str],
    request_url: str,
    *,
    zone: ZoneInfo | None = None,
    posted: bool = False,
) -> ExportRequest:
    """The kick-off as the IG defines it; anything the platform would otherwise ignore is refused (400),
    unless the client asked for ``Prefer: handling=lenient``. ``items`` are the query's (GET) or the
    ``Parameters`` body's (POST, ``posted``: see ``parameters_items``); ``zone`` reads a _typeFilter's dates."""
    prefer = [p.strip().lower() for p in headers.get("prefer", "").split(",")]
    if "respond-async" not in prefer:
        raise BadRequest("a Bulk Data kick-off needs the header 'Prefer: respond-async'", "Prefer", code="required")
    lenient = "handling=lenient" in prefer
    accept = headers.get("accept", "").split(";")[0].strip().lower()
    if accept not in ACCEPTED:
        raise BadRequest(f"Accept must be application/fhir+json, not {accept!r}", "Accept", code="not-supported")
    if group_id is not None and not _PILOT.match(group_id):
        raise BadRequest(f"{group_id!r} is not a Group id", "Group.id")
    types: list[str] = []
    since: datetime | None = None
    filters: list[str] = []
    elements: list[tuple[str | None, str]] = []
    patients: list[str] | None = None
    for name, value in items:
        if name == "_type":
            for kind in (t.strip() for t in value.split(",")):
                if kind not in SUPPORTED_TYPES:
                    if lenient:
                        continue
                    raise BadRequest(
                        f"_type {kind!r} is not exported; supported: {', '.join(SUPPORTED_TYPES)}",
                        "_type",
                        code="not-supported",
                    )
                if kind not in types:
                    types.append(kind)
        elif name == "_since":
            since = _instant(value)
        elif name == "_outputFormat":
            if value not in OUTPUT_FORMATS:
                raise BadRequest(
                    f"_outputFormat {value!r} is not supported; use {NDJSON}", "_outputFormat", code="not-supported"
                )
        elif name == "_typeFilter":
            query = _type_filter(value, zone or ZoneInfo("Europe/Copenhagen"), lenient)
            if query is not None:
                filters.append(query)
        elif name == "_elements":
            elements += _elements(value)
        elif name == "patient" and posted:
            if level == "system":
                raise BadRequest(
                    "patient is not applicable to a system-level export; use Patient/$export or Group/[id]/$export",
                    "patient",
                    code="not-supported",
                )
            found = _PATIENT_REFERENCE.match(value)
            if found is None:
                raise BadRequest(f"patient: {value[:80]!r} is not a reference Patient/[id]", "patient")
            patients = [*(patients or []), found.group(1)]
        elif not lenient:
            hint = {
                "patient": " (give patient references in a POST kick-off's Parameters body)",
                "includeAssociatedData": " (no associated data is exported)",
            }.get(name, "")
            raise BadRequest(
                f"unknown or unsupported parameter {name!r}{hint}; supported: {', '.join(PARAMETERS)}"
                " (send 'Prefer: handling=lenient' to have unsupported parameters ignored)",
                name,
                code="not-supported",
            )
    chosen = tuple(types) or SUPPORTED_TYPES
    if filters and "Observation" not in chosen:
        raise BadRequest("_typeFilter is about Observation, which _type leaves out", "_typeFilter")
    return ExportRequest(
        level,
        group_id,
        chosen,
        since,
        request_url,
        tuple(dict.fromkeys(filters)),
        tuple(dict.fromkeys(elements)),
        tuple(dict.fromkeys(patients)) if patients is not None else None,
    )


def parameters_items(body: Any) -> list[tuple[str, str]]:
    """A POST kick-off's ``Parameters`` resource as (name, value) items, each parameter in the value[x] the IG
    gives it (``patient`` as a ``valueReference``'s reference); anything else is a 400 naming the place."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("a POST kick-off's body is a FHIR Parameters resource", "Parameters")
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise BadRequest("Parameters.parameter is a list", "Parameters.parameter")
    items: list[tuple[str, str]] = []
    for n, parameter in enumerate(parameters):
        where = f"Parameters.parameter[{n}]"
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise BadRequest(f"{where} has no name", where)
        name = parameter["name"]
        values = [k for k in parameter if k.startswith("value")]
        expected = PARAMETER_VALUES.get(name)
        if expected is None:
            items.append((name, ""))  # unknown: refused (or ignored when lenient) as a query's would be
            continue
        if values != [expected]:
            raise BadRequest(f"{where} ({name}) needs exactly one {expected}", where)
        value = parameter[expected]
        if expected == "valueReference":
            value = value.get("reference") if isinstance(value, dict) else None
        if not isinstance(value, str):
            raise BadRequest(f"{where}.{expected} of {name} is not a string", where)
        items.append((name, value))
    return items


def _type_filter(value: str, zone: ZoneInfo, lenient: bool) -> str | None:
    """An ``Observation?...`` filter's query, checked with the Observation search's own parser; a filter on
    another type is refused (ignored when lenient)."""
    kind, mark, query = value.partition("?")
    if not mark or not query:
        raise BadRequest(f"_typeFilter {value[:80]!r} is not [type]?[search parameters]", "_typeFilter")
    if kind not in FILTERED_TYPES:
        if lenient:
            return None
        raise BadRequest(
            f"_typeFilter on {kind[:40]!r} is not supported; only {', '.join(FILTERED_TYPES)} is filtered",
            "_typeFilter",
            code="not-supported",
        )
    parse_type_filter(query, zone)
    return query


def parse_type_filter(query: str, zone: ZoneInfo) -> Any:
    """A _typeFilter's Observation query (``homediag.search_params.ObservationQuery``): the Observation search's
    parameters that select resources; paging and shaping ones are refused."""
    try:
        items = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise BadRequest(f"_typeFilter query {query[:80]!r} cannot be read", "_typeFilter") from None
    for name, _value in items:
        if name.partition(":")[0] in NOT_IN_TYPE_FILTER:
            raise BadRequest(f"_typeFilter may not hold {name!r} (it selects resources only)", "_typeFilter")
    try:
        return parse_observation_query(items, zone, 1, 1)
    except BadRequest as exc:
        raise BadRequest(f"_typeFilter: {exc}", "_typeFilter") from None


def _elements(value: str) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for part in (p.strip() for p in value.split(",")):
        found = _ELEMENT.match(part)
        if found is None:
            raise BadRequest(
                f"_elements: {part[:80]!r} is not an element of Patient or Observation ([type.]element, top level)",
                "_elements",
            )
        out.append((found.group(1), found.group(2)))
    return out


def _instant(value: str) -> datetime:
    if not _INSTANT.match(value):
        raise BadRequest(
            f"_since must be a FHIR instant with a time zone (e.g. 2026-11-01T00:00:00Z), not {value!r}", "_since"
        )
    try:
        return to_store(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError as exc:
        raise BadRequest(f"_since {value!r} is not a valid instant: {exc}", "_since") from None
