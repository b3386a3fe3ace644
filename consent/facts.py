"""A parsed consent's decision-relevant facts as compact JSON, and back.

``parse_consent`` validates a whole FHIR Consent with the generated pydantic models: right when a consent is
recorded, and too slow for every process that decides about hundreds of patients (a fresh server worker's first
worklist). The store keeps ``facts_of(parse_consent(resource))`` beside each consent, written when it is recorded,
and a decision reads ``record_of(facts)``: the same ``ConsentRecord``, field for field (status, scope, patient,
dateTime, and each provision's type, purposes, period and dataPeriod, nested), so the decision cannot differ.
Periods keep both the instants (UTC) and the FHIR text as written (reasons quote it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .model import ConsentRecord, Period, Provision

FACTS_FORMAT = 1
"""The shape of ``facts_of``'s JSON; a reader given another (or none) parses the resource instead."""


def facts_of(record: ConsentRecord) -> dict[str, Any]:
    """``record`` as JSON-able facts (see the module)."""
    return {
        "format": FACTS_FORMAT,
        "id": record.id,
        "status": record.status,
        "scope": record.scope,
        "patient": record.patient,
        "dateTime": _instant(record.date_time),
        "provision": _provision_facts(record.provision),
    }


def record_of(facts: Mapping[str, Any]) -> ConsentRecord:
    """The ``ConsentRecord`` ``facts`` were made from; raises ValueError for facts of another format."""
    if facts.get("format") != FACTS_FORMAT:
        raise ValueError(f"consent facts of format {facts.get('format')!r}, not {FACTS_FORMAT}")
    return ConsentRecord(
        status=facts["status"],
        scope=facts["scope"],
        patient=facts["patient"],
        date_time=_parsed(facts["dateTime"]),
        provision=_provision(facts["provision"]),
        id=facts["id"],
    )


def _provision_facts(provision: Provision) -> dict[str, Any]:
    return {
        "type": provision.type,
        "purposes": sorted(provision.purposes),
        "period": _period_facts(provision.period),
        "dataPeriod": _period_facts(provision.data_period),
        "provision": [_provision_facts(child) for child in provision.provisions],
    }


def _provision(facts: Mapping[str, Any]) -> Provision:
    return Provision(
        type=facts["type"],
        purposes=frozenset(facts["purposes"]),
        period=_period(facts["period"]),
        data_period=_period(facts["dataPeriod"]),
        provisions=tuple(_provision(child) for child in facts["provision"]),
    )


def _period_facts(period: Period | None) -> list[str | None] | None:
    if period is None:
        return None
    return [_instant(period.start), _instant(period.end), period.start_text, period.end_text]


def _period(facts: list[str | None] | None) -> Period | None:
    if facts is None:
        return None
    start, end, start_text, end_text = facts
    return Period(_parsed(start), _parsed(end), start_text, end_text)


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parsed(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None
