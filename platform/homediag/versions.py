"""Version metadata of served resources: ``meta.versionId`` and ``meta.lastUpdated``.

What each type's version is: an Observation is stored once and never changed (version 1, last updated
when the platform received it); a Patient record is version 1 from its enrolment; a Device counts the
changes of what it shows (``device.version``, ``device.updated_at``); a Consent keeps every version
(``consent_version``); a published StructureDefinition is version 1 of its ``date``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from homediag.clock import from_store


def instant(stored: datetime) -> str:
    """A stored (naive UTC) time as a FHIR instant."""
    return from_store(stored).isoformat().replace("+00:00", "Z")


def stamp(resource: dict[str, Any], version: int | str, last_updated: datetime | str) -> dict[str, Any]:
    """``resource`` (a copy) with ``meta.versionId`` and ``meta.lastUpdated``; other meta (profile, tag) kept."""
    when = last_updated if isinstance(last_updated, str) else instant(last_updated)
    return {**resource, "meta": {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": when}}


def meta_members(version: int | str, last_updated: datetime) -> str:
    """What ``stamp`` adds to meta, as JSON members (``"versionId":"1","lastUpdated":"…"``), for a resource
    served as text (``homediag.served``)."""
    return f'"versionId":{json.dumps(str(version))},"lastUpdated":"{instant(last_updated)}"'


def structure_definition(sd: dict[str, Any]) -> dict[str, Any]:
    """A published profile: version 1, last updated on its ``date`` (midnight UTC)."""
    day = datetime.fromisoformat(str(sd.get("date") or "2026-11-26")[:10]).replace(tzinfo=UTC)
    return stamp(sd, 1, day.isoformat().replace("+00:00", "Z"))


def version_of(resource: dict[str, Any]) -> str | None:
    meta = resource.get("meta") or {}
    return str(meta["versionId"]) if "versionId" in meta else None


def last_updated_of(resource: dict[str, Any]) -> datetime | None:
    meta = resource.get("meta") or {}
    if "lastUpdated" not in meta:
        return None
    return datetime.fromisoformat(str(meta["lastUpdated"]).replace("Z", "+00:00"))
