"""A consent's kept facts (``facts_of``, ``record_of``) give back the parsed record, and so the same decisions,
whatever the consent: status, purposes, periods of dates or instants, dataPeriod, nested exceptions, dateTime."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homediag.consent import decide, facts_of, parse_consent, permitted_data_window, record_of

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PURPOSES = ("TREAT", "HRESCH", "ETREAT", "HOPERAT")
BASE = datetime(2026, 3, 1, tzinfo=UTC)


def _time(days: int, as_date: bool) -> str:
    at = BASE + timedelta(days=days, hours=7)
    return at.date().isoformat() if as_date else at.isoformat().replace("+00:00", "Z")


@st.composite
def periods(draw: st.DrawFn) -> dict[str, str] | None:
    if draw(st.booleans()):
        return None
    start = draw(st.one_of(st.none(), st.integers(-200, 200)))
    length = draw(st.one_of(st.none(), st.integers(1, 300)))
    out = {}
    if start is not None:
        out["start"] = _time(start, draw(st.booleans()))
    if length is not None:
        out["end"] = _time((start or 0) + length, draw(st.booleans()))
    return out or None


@st.composite
def provisions(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"type": draw(st.sampled_from(["permit", "deny"]) if depth else st.just("permit"))}
    chosen = draw(st.lists(st.sampled_from(PURPOSES), unique=True, max_size=3))
    if chosen:
        out["purpose"] = [{"system": ACT_REASON, "code": c} for c in chosen]
    for key in ("period", "dataPeriod"):
        found = draw(periods())
        if found:
            out[key] = found
    if depth < 2:
        children = draw(st.lists(provisions(depth + 1), max_size=2))
        if children:
            out["provision"] = children
    return out


@st.composite
def consents(draw: st.DrawFn) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": draw(st.sampled_from(["c1", "a0b1c2d3e4f50617"])),
        "status": draw(st.sampled_from(["active", "inactive", "proposed", "draft", "rejected", "entered-in-error"])),
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p-0001"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": draw(provisions()),
    }
    given_at = draw(st.one_of(st.none(), st.integers(-100, 100)))
    if given_at is not None:
        resource["dateTime"] = (BASE + timedelta(days=given_at)).astimezone().isoformat()
    return resource


@settings(max_examples=300, deadline=None)
@given(consents(), st.lists(st.integers(-250, 550), min_size=1, max_size=4), st.sampled_from(PURPOSES))
def test_the_kept_facts_give_the_parsed_record_and_its_decisions(
    resource: dict[str, Any], days: list[int], purpose: str
) -> None:
    try:
        parsed = parse_consent(resource)
    except ValueError:  # a drawn period that ends before it starts: refused when recorded, so never kept
        return
    kept = record_of(json.loads(json.dumps(facts_of(parsed))))  # through the text the store keeps
    assert kept == parsed
    for day in days:
        now = BASE + timedelta(days=day, minutes=13)
        for data_time in (None, now - timedelta(days=30), now):
            assert decide([kept], purpose=purpose, data_time=data_time, as_of=now) == decide(
                [parsed], purpose=purpose, data_time=data_time, as_of=now
            )
        assert permitted_data_window([kept], purpose=purpose, as_of=now) == permitted_data_window(
            [parsed], purpose=purpose, as_of=now
        )


def test_facts_of_another_format_are_refused() -> None:
    facts = facts_of(parse_consent(_one()))
    with pytest.raises(ValueError, match="format"):
        record_of({**facts, "format": 99})
    with pytest.raises(ValueError, match="format"):
        record_of({k: v for k, v in facts.items() if k != "format"})


def _one() -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p-0001"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "purpose": [{"system": ACT_REASON, "code": "TREAT"}]},
    }
