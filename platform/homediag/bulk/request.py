"""A Bulk Data kick-off request: the level, the resource types, ``_since`` and the output format."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from homediag.clock import to_store
from homediag.errors import BadRequest

# What an export can hold: the pseudonymous Patient and its Observations.
SUPPORTED_TYPES = ("Patient", "Observation")
NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
ACCEPTED = frozenset({"", "*/*", "application/fhir+json", "application/json"})
PARAMETERS = ("_type", "_since", "_outputFormat")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
_PILOT = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class ExportRequest:
    level: str  # system | patient | group
    group_id: str | None
    types: tuple[str, ...]
    since: datetime | None  # naive UTC
    request_url: str


def parse_kickoff(
    level: str,
    group_id: str | None,
    items: list[tuple[str, str]],
    headers: dict[str, str],
    request_url: str,
) -> ExportRequest:
    """The kick-off as the IG defines it; anything the platform would otherwise ignore is refused (400),
    unless the client asked for ``Prefer: handling=lenient``."""
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
        elif not lenient:
            raise BadRequest(
                f"unknown parameter {name!r}; supported: {', '.join(PARAMETERS)}"
                " (send 'Prefer: handling=lenient' to have unsupported parameters ignored)",
                name,
                code="not-supported",
            )
    return ExportRequest(level, group_id, tuple(types) or SUPPORTED_TYPES, since, request_url)


def _instant(value: str) -> datetime:
    if not _INSTANT.match(value):
        raise BadRequest(
            f"_since must be a FHIR instant with a time zone (e.g. 2026-11-01T00:00:00Z), not {value!r}", "_since"
        )
    try:
        return to_store(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError as exc:
        raise BadRequest(f"_since {value!r} is not a valid instant: {exc}", "_since") from None
