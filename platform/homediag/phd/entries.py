"""The entries of a PHD gateway request and their results: the Bundle's shape, each entry's request,
what each answers (``response`` in a transaction-response or batch-response Bundle)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from homediag.domains import MAX_TEXT_ID
from homediag.errors import BadRequest, Unprocessable
from homediag.fhir_profiles import Issue, has_errors, operation_outcome
from homediag.ingest.pipeline import Admitted

from .constants import MAX_ENTRIES

STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    404: "404 Not Found",
    409: "409 Conflict",
    412: "412 Precondition Failed",
    422: "422 Unprocessable Entity",
    500: "500 Internal Server Error",
}
TYPES = ("Patient", "Device", "Observation")


@dataclass
class EntryResult:
    index: int
    full_url: str | None
    resource_type: str | None
    status: int = 0
    location: str | None = None
    issues: list[Issue] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return has_errors(self.issues)

    def response(self, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {"status": STATUS_TEXT.get(self.status, str(self.status))}
        if self.location:
            out["location"] = self.location
        if self.issues:
            out["outcome"] = operation_outcome([prefixed(i, prefix) for i in self.issues])
        return out


@dataclass
class GatewayResult:
    """What the API answers: ``status`` and ``body``; ``location`` (relative) for a single create."""

    upload: str
    status: int
    body: dict[str, Any]
    location: str | None = None


@dataclass
class Entry:
    result: EntryResult
    resource: dict[str, Any]
    request: dict[str, Any]
    patient: Admitted | None = None
    device_id: str | None = None  # a Device entry: our id; an Observation: its device
    subject_device: str | None = None  # an Observation about a Device (PHD coincident time stamp): the device's id
    obs_id: str | None = None
    dedup: str | None = None
    existing: bool = False  # a conditional create that matched
    client_id: str | None = None  # PUT Type/{id}: the id the client assigned, to be kept
    effective: tuple[datetime, datetime] | None = None
    row: dict[str, Any] | None = None

    @property
    def rtype(self) -> str | None:
        return self.result.resource_type

    def fail(self, *issues: Issue, status: int = 422) -> None:
        self.result.issues.extend(issues)
        self.result.status = status

    @property
    def failed(self) -> bool:
        return self.result.failed


def prefixed(issue: Issue, prefix: str) -> Issue:
    """An issue about a Bundle entry, its expression made relative to the Bundle (``prefix`` is
    ``Bundle.entry[n]``; empty for a single resource, whose expressions stay as they are).

    Expressions about the resource start with its type (``Observation.valueQuantity``); those about
    the entry itself start with ``request``, ``resource`` or ``fullUrl``."""
    if not prefix:
        return issue
    expr = issue.expression
    if expr is None:
        where = prefix
    elif expr.startswith(("request", "resource", "fullUrl")):
        where = f"{prefix}.{expr}"
    elif expr[:1].isupper() and not expr.startswith(("Bundle", "If-None-Exist")):
        head, dot, rest = expr.partition(".")
        where = f"{prefix}.resource.{rest}" if dot else f"{prefix}.resource"
    else:
        where = expr
    return Issue(issue.severity, issue.code, issue.diagnostics, where)


def bundle_entries(raw: Any) -> list[Entry]:
    """The entries of a ``POST /fhir`` body; BadRequest or Unprocessable when it is not a transaction or
    batch Bundle a gateway may send."""
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        raise BadRequest(
            issues=[
                Issue("error", "structure", "POST /fhir takes a Bundle of type transaction or batch", "resourceType")
            ]
        )
    if raw.get("type") not in ("transaction", "batch"):
        text = f"Bundle.type must be transaction or batch, not {raw.get('type')!r}"
        raise Unprocessable(issues=[Issue("error", "not-supported", text, "Bundle.type")])
    if not isinstance(raw.get("entry", []), list):
        raise BadRequest(issues=[Issue("error", "structure", "Bundle.entry must be a list", "Bundle.entry")])
    if len(raw.get("entry") or []) > MAX_ENTRIES:
        text = f"a Bundle may hold at most {MAX_ENTRIES} entries; split it"
        raise Unprocessable(issues=[Issue("error", "too-costly", text, "Bundle.entry")])
    entries = []
    for n, e in enumerate(raw.get("entry") or []):
        e = e if isinstance(e, dict) else {}
        resource = e.get("resource") if isinstance(e.get("resource"), dict) else {}
        request = e.get("request") if isinstance(e.get("request"), dict) else {}
        full_url = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
        rtype = resource.get("resourceType") if isinstance(resource.get("resourceType"), str) else None
        entries.append(Entry(EntryResult(n, full_url, rtype), resource, request))
    return entries


def observation_entry(raw: Any, if_none_exist: str | None) -> Entry:
    """The one entry of a ``POST /fhir/Observation`` body; BadRequest when it is not an Observation."""
    if not isinstance(raw, dict) or raw.get("resourceType") != "Observation":
        raise BadRequest(
            issues=[Issue("error", "structure", "POST /fhir/Observation takes an Observation", "resourceType")]
        )
    request: dict[str, Any] = {"method": "POST", "url": "Observation"}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return Entry(EntryResult(0, None, "Observation"), raw, request)


_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_HEX_ID = re.compile(r"(?:[0-9a-f]{2}){1,16}")
# the longest id (in bytes; a lower-case hex id: 32 digits) that a reader's pseudonym domain can carry as a FHIR id
MAX_CLIENT_ID = MAX_TEXT_ID


def keepable_id(resource_id: str) -> bool:
    """Whether a client-assigned id can be kept as the resource's id here: a FHIR id that pseudonymised
    readers can be shown too (AES-SIV of at most 16 bytes, hex: 64 characters, the FHIR limit)."""
    return bool(_HEX_ID.fullmatch(resource_id)) or (
        bool(_ID.fullmatch(resource_id)) and len(resource_id.encode()) <= MAX_CLIENT_ID
    )


def check_request(e: Entry, mode: str) -> None:
    """What a gateway may ask of an entry: POST or PUT of a Patient, Device or Observation. ``PUT
    Type/{id}`` asks for a client-assigned id: kept (``client_id``) when this server can keep it, else
    refused saying why; ``PUT Type?criteria`` is a conditional update (``ifNoneExist`` for a reading,
    which never changes)."""
    method = str(e.request.get("method") or ("POST" if mode == "single" else "")).upper()
    if not e.resource:
        e.fail(Issue("error", "required", "the entry has no resource", "resource"), status=400)
    elif e.rtype not in TYPES:
        text = f"a gateway Bundle may hold Patient, Device and Observation entries, not {e.rtype!r}"
        e.fail(Issue("error", "not-supported", text, "resource.resourceType"), status=400)
    elif method not in ("POST", "PUT"):
        text = f"request.method {method or 'missing'} is not supported for {e.rtype} (POST, PUT)"
        e.fail(Issue("error", "not-supported", text, "request.method"), status=400)
    elif method == "PUT" and e.rtype in ("Device", "Observation"):
        url = str(e.request.get("url") or "")
        kind, _, rest = url.partition("?") if "?" in url else url.partition("/")
        if "?" in url:
            if kind != e.rtype:
                text = f"request.url {url[:80]!r} names another type than the resource ({e.rtype})"
                e.fail(Issue("error", "invalid", text, "request.url"), status=400)
            elif e.rtype == "Observation":
                e.request = {**e.request, "ifNoneExist": rest}  # a reading is never changed: update = create once
            return
        if kind != e.rtype or not _ID.fullmatch(rest):
            text = f"request.url of a PUT is {e.rtype}/{{id}} or {e.rtype}?criteria, not {url[:80]!r}"
            e.fail(Issue("error", "invalid", text, "request.url"), status=400)
        elif e.resource.get("id") not in (None, rest):
            text = f"the resource id {str(e.resource.get('id'))[:64]!r} is not the id in request.url ({rest})"
            e.fail(Issue("error", "invalid", text, "resource.id"), status=400)
        elif not keepable_id(rest):
            text = (
                f"the id {rest!r} cannot be kept: this server keeps client-assigned ids of at most {MAX_CLIENT_ID}"
                " characters (or 32 lower-case hex digits), because readers in pseudonym domains are shown an"
                f" encryption of every id; POST the {e.rtype} instead (the answer's location names its id here)"
            )
            e.fail(Issue("error", "not-supported", text, "request.url"), status=422)
        else:
            e.client_id = rest
