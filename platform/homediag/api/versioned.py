"""HTTP around versioned resources: ``ETag``/``Last-Modified`` on reads and creates, conditional reads
(``If-None-Match``, ``If-Modified-Since`` -> 304) and ``If-Match`` on updates (-> 412 when stale)."""

from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from homediag.errors import ServiceError
from homediag.versions import last_updated_of, version_of

from .responses import FhirResponse


class PreconditionFailed(ServiceError):
    status = 412
    code = "conflict"


def etag(version: str) -> str:
    return f'W/"{version}"'


def _tags(header: str) -> set[str]:
    """The version ids named in an If-None-Match / If-Match header (``W/"3"``, ``"3"``, ``*``)."""
    found = set()
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        found.add(tag.strip('"'))
    return found


def version_headers(resource: dict[str, Any]) -> dict[str, str]:
    headers = {}
    version, updated = version_of(resource), last_updated_of(resource)
    if version is not None:
        headers["ETag"] = etag(version)
    if updated is not None:
        headers["Last-Modified"] = format_datetime(updated, usegmt=True)
    return headers


def not_modified(request: Request, resource: dict[str, Any]) -> bool:
    """Whether a conditional read finds the client's copy current."""
    version, updated = version_of(resource), last_updated_of(resource)
    if (none_match := request.headers.get("if-none-match")) is not None:
        tags = _tags(none_match)
        return "*" in tags or (version is not None and version in tags)
    if (since := request.headers.get("if-modified-since")) is not None and updated is not None:
        try:
            limit = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False  # an unreadable date: answer in full, as HTTP says
        return updated.replace(microsecond=0) <= limit
    return False


def versioned(
    request: Request, resource: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A resource with its version headers; a 304 with no body to a conditional read it satisfies."""
    out = {**version_headers(resource), **(headers or {})}
    if status_code == 200 and request.method in ("GET", "HEAD") and not_modified(request, resource):
        return Response(status_code=304, headers=out)
    return FhirResponse(resource, status_code=status_code, headers=out)


def check_if_match(request: Request, current: dict[str, Any]) -> None:
    """An update with ``If-Match`` applies only to the version it names (412 otherwise)."""
    header = request.headers.get("if-match")
    if header is None:
        return
    tags, version = _tags(header), version_of(current)
    if "*" not in tags and (version is None or version not in tags):
        raise PreconditionFailed(
            f"If-Match names version {', '.join(sorted(tags))}, but the current version is {version}; "
            "read it again and send the update against that version",
            "If-Match",
        )
