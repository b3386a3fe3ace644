"""Each patient's part of the web worklist (``Summary``) kept in the store (``worklist_summary``), so that the first
worklist view of a freshly started process need not compute every patient's part again: a part is used only while
what it was computed from is unchanged (the SHA-256 of the worklist's mark without the Observation count: consent
window, acknowledgements, reviews, settings versions, first reading dated ahead; the count apart, ``observations``),
from the instant it was computed as of (``at``) and before the instant time alone may change it (``until``).

A part also keeps its status's running parts (``parts``: ``status_parts.StatusParts`` and the latest reading's
time), so that a part whose only change is new readings dated after all of its own is grown by them, not computed
again from the patient's history: by ingest in its transaction (``worklist_grown``) or by a view; and so that a
part whose ``until`` has passed (the next morning) is finished again at now from them, while what it was computed
from is unchanged and before its ``parts_until`` (a settings version dated ahead comes into force then). It holds no
identity (names and dates of birth are read from the vault each view) and decides nothing: the worklist has decided
which patients it shows before it asks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from sqlalchemy import case, null, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from homediag.clock import to_store
from homediag.monitoring import persisted
from homediag.monitoring import store as monitoring_store
from homediag.monitoring.instants import instant, micros
from homediag.monitoring.plan import Plan, PlanItem
from homediag.store import models as m
from homediag.store.key_lists import among, chunks

from .readings import Reading
from .status_parts import FLAGGED, Contributions, StatusParts
from .triage import Assessment

FORMAT = 3  # the body's format and the computation's: a change makes every kept part unused
_NEVER = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Summary:
    """A patient's part of the worklist, and what it was computed from (``worklist_marks.marks``: consent window,
    Observation count, acknowledgements, reviews, settings versions, first reading dated ahead)."""

    mark: tuple[Any, ...]
    until: datetime  # time alone cannot change it before this instant
    latest: tuple[Reading, ...]
    days_measured: int
    assessment: Assessment | None
    parts: StatusParts | None = None  # the assessment's running parts (None: read from the store to grow it)
    days: frozenset[date] = frozenset()  # the local dates measured (their number is ``days_measured``)
    since: datetime | None = None  # the time of its latest reading (the plan's look-back included); None: none
    at_since: frozenset[str] = frozenset()  # the ids of its readings dated ``since``
    looks_back: bool = False  # a weight-change rule in its settings: never grown (a weight's triage looks back)
    at: datetime = datetime.min.replace(tzinfo=UTC)  # computed as of this instant (valid from it to ``until``)
    # its running parts finish its status at any instant from ``at`` to this one (a settings version dated ahead
    # comes into force then, or a reading dated ahead becomes due); None: not after ``until``
    parts_until: datetime | None = None


def mark_key(mark: tuple[Any, ...]) -> str:
    """The SHA-256 of a mark without its Observation count (its ``repr``: plain values, datetimes and the consent
    window's dataclass)."""
    return hashlib.sha256(repr((FORMAT, mark[0], mark[2:])).encode()).hexdigest()


def _instant(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _parsed(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _reading(r: Reading) -> dict[str, Any]:
    return {
        "id": r.id,
        "measurement": r.measurement,
        "text": r.text,
        "unit": r.unit,
        "values": r.values,
        "effective": _instant(r.effective),
        "received_at": _instant(r.received_at),
        "gateway_received_at": _instant(r.gateway_received_at),
        "device": r.device,
        "gateway": r.gateway,
        "clock_not_set": r.clock_not_set,
        "flags": r.flags,
    }


def _encode(s: Summary) -> str:
    a = s.assessment
    return json.dumps(
        {
            "latest": [_reading(r) for r in s.latest],
            "days": sorted(d.isoformat() for d in s.days),
            "at": _instant(s.at),
            "since": _instant(s.since),
            "at_since": sorted(s.at_since),
            "looks_back": s.looks_back,
            "parts_until": _instant(s.parts_until),
            "assessment": None
            if a is None
            else {
                "colour": a.colour,
                "open_colour": a.open_colour,
                "unacknowledged": a.unacknowledged,
                "reasons": a.reasons,
                "plan_ratio": a.plan_ratio,
                "last_reviewed": [a.last_reviewed[0], _instant(a.last_reviewed[1])] if a.last_reviewed else None,
            },
        }
    )


def _decode(text: str, mark: tuple[Any, ...], until: datetime) -> Summary:
    body = json.loads(text)
    latest = tuple(
        Reading(
            id=r["id"],
            measurement=r["measurement"],
            text=r["text"],
            unit=r["unit"],
            values={k: float(v) for k, v in r["values"].items()},
            effective=_parsed(r["effective"]),  # type: ignore[arg-type]
            received_at=_parsed(r["received_at"]),  # type: ignore[arg-type]
            gateway_received_at=_parsed(r["gateway_received_at"]),
            device=r["device"],
            gateway=r["gateway"],
            clock_not_set=r["clock_not_set"],
            flags=list(r["flags"]),
        )
        for r in body["latest"]
    )
    a = body["assessment"]
    assessment = None
    if a is not None:
        reviewed = a["last_reviewed"]
        assessment = Assessment(
            colour=a["colour"],
            open_colour=a["open_colour"],
            unacknowledged=a["unacknowledged"],
            reasons=list(a["reasons"]),
            plan_ratio=a["plan_ratio"],
            last_reviewed=(reviewed[0], _parsed(reviewed[1])) if reviewed else None,  # type: ignore[arg-type]
        )
    days = frozenset(date.fromisoformat(d) for d in body["days"])
    return Summary(
        mark,
        until,
        latest,
        len(days),
        assessment,
        None,
        days,
        _parsed(body["since"]),
        frozenset(body["at_since"]),
        body["looks_back"],
        _parsed(body["at"]),  # type: ignore[arg-type]
        _parsed(body.get("parts_until")),
    )


_PARTS_FORMAT = 4  # 4: instants as microseconds since the epoch (``monitoring.instants``), not ISO text


def _period_columns(period: Contributions) -> dict[str, Any]:
    return {
        "at": period.at,
        "flags": period.flags,
        "reasons": [[n, list(why)] for n, why in enumerate(period.reasons) if why],
    }


def _period_of(columns: dict[str, Any]) -> Contributions:
    at, flags = columns["at"], columns["flags"]
    if len(at) != len(flags) or not set(flags) <= FLAGGED.keys():
        raise ValueError("kept running parts: a period's columns do not match")
    reasons: list[tuple[str, ...]] = [()] * len(at)
    for n, why in columns["reasons"]:
        reasons[n] = tuple(why)
    return Contributions(at, flags, reasons)


def encode_parts(parts: StatusParts, zone: str, window: Any) -> str:
    """The running parts as JSON text, with the time zone their days were counted in and the consent window's
    intervals (naive UTC) their readings were read from (``view.Window``). The readings' instants are whole
    microseconds since the epoch (a number decodes without a datetime per reading: the next morning's first view
    decodes 500 patients' parts)."""
    return json.dumps(
        {
            "format": _PARTS_FORMAT,
            "zone": zone,
            "window": [[_instant(s), _instant(e)] for s, e in window.intervals],
            "plan": [[i.measurement, i.times, i.every_days] for i in parts.plan.items],
            "times": parts.times,
            "period": _period_columns(parts.period),
            "latest": _latest_columns(parts.latest_readings()),
        }
    )


def _latest_columns(latest: dict[str, monitoring_store.TriagedReading]) -> dict[str, Any]:
    """The latest readings, each once (a blood-pressure reading is the latest of three measures), and the measures'
    indices into them."""
    readings: list[monitoring_store.TriagedReading] = []
    of: dict[str, int] = {}
    for measure, r in latest.items():
        found = next((n for n, seen in enumerate(readings) if seen is r), None)
        if found is None:
            found = len(readings)
            readings.append(r)
        of[measure] = found
    return {
        "readings": [
            [
                r.id,
                micros(r.effective),
                persisted.encode_values(r.values),
                persisted.encode_triage(r.result),
                r.acknowledged,
            ]
            for r in readings
        ],
        "of": of,
    }


def _latest_of(
    columns: dict[str, Any],
    decoded_with: Sequence[monitoring_store.SettingsVersion] | None,
    history: Sequence[monitoring_store.SettingsVersion] | None,
) -> dict[str, monitoring_store.TriagedReading]:
    """The kept latest readings, each with the settings version in force at its time, of ``history`` or else of the
    history the parts were decoded with."""
    history = history if history is not None else decoded_with
    if history is None:
        raise ValueError("the kept latest readings are decoded with the patient's settings history")
    readings = []
    for oid, effective, values, verdicts, acknowledged in columns["readings"]:
        at = instant(effective)
        readings.append(
            monitoring_store.TriagedReading(
                oid,
                None,
                at,
                None,
                None,
                persisted.decode_triage(verdicts),
                monitoring_store.in_force(history, at),
                acknowledged,
                persisted.decode_values(values),
            )
        )
    return {measure: readings[n] for measure, n in columns["of"].items()}


Intervals = list[tuple[datetime | None, datetime | None]]


def decode_parts(
    text: str, zone: str | None, history: Sequence[monitoring_store.SettingsVersion] | None
) -> tuple[StatusParts, Intervals, str] | None:
    """(the running parts, the consent window's intervals they were read from, the time zone they counted days in)
    of ``encode_parts``'s text; None when they were counted in another time zone than ``zone`` (the days would
    differ; None: any) or kept in an earlier format. Without the patient's settings ``history``, the latest readings
    are decoded when given it (``StatusParts.latest_readings``): finishing the parts again needs neither."""
    body = json.loads(text)
    if body.get("format") != _PARTS_FORMAT or (zone is not None and body["zone"] != zone):
        return None
    parts = StatusParts(
        Plan(tuple(PlanItem(name, times, every) for name, times, every in body["plan"])),
        body["times"],
        _period_of(body["period"]),
        kept_latest=partial(_latest_of, body["latest"], history),
    )
    return parts, [(_parsed(s), _parsed(e)) for s, e in body["window"]], body["zone"]


def recall(
    session: Session, marks: dict[str, tuple[Any, ...]], now: datetime, expired: dict[str, str] | None = None
) -> dict[str, Summary]:
    """The kept parts of these patients computed from the same mark but perhaps fewer Observations (their ``mark``
    holds the count they were computed from: fewer is a part to grow by the new ones), as of an instant at or before
    ``now``, and ``now`` before their ``until`` or their ``parts_until`` (to finish again at ``now`` from their
    running parts). Without their running parts (``parts_text``); with ``expired``, the running parts' text of the
    rows whose ``until`` has come is put there (read in the same statement: the next morning finishes them all)."""
    keys = sorted(marks)
    out: dict[str, Summary] = {}
    table = m.WorklistSummary
    ahead = case((table.until <= to_store(now), table.parts)) if expired is not None else null()
    for chunk in chunks(session, keys):
        rows = session.execute(
            select(table.patient_key, table.mark, table.observations, table.until, table.body, ahead).where(
                among(session, table.patient_key, chunk)
            )
        )
        for pkey, mark, observations, until, body, text in rows:
            until = until.replace(tzinfo=UTC) if until.tzinfo is None else until
            wanted = marks[pkey]
            if observations is None or not observations <= wanted[1]:
                continue
            if mark == mark_key(wanted):
                found = _decode(body, (wanted[0], observations, *wanted[2:]), until)
                if found.at <= now and (now < until or now < (found.parts_until or until)):
                    out[pkey] = found
                    if text is not None and expired is not None:
                        expired[pkey] = text
    return out


def parts_text(session: Session, keys: Iterable[str]) -> dict[str, str]:
    """The kept running parts' text of these patients (``encode_parts``)."""
    wanted = sorted(keys)
    out: dict[str, str] = {}
    table = m.WorklistSummary
    for chunk in chunks(session, wanted):
        for pkey, text in session.execute(
            select(table.patient_key, table.parts).where(among(session, table.patient_key, chunk))
        ):
            if text is not None:
                out[pkey] = text
    return out


def keep(session: Session, parts: Sequence[tuple[str, Summary, str | None]]) -> None:
    """Keep (insert or replace) these patients' parts: (patient key, summary, its running parts' text)."""
    keep_marked(session, [(pkey, mark_key(s.mark), s, text) for pkey, s, text in parts])


def keep_marked(session: Session, parts: Sequence[tuple[str, str, Summary, str | None]]) -> None:
    """``keep`` with the mark's key given: (patient key, ``mark_key``, summary (its mark's count is kept), its
    running parts' text)."""
    if not parts:
        return
    rows = sorted(
        (
            {
                "patient_key": pkey,
                "mark": key,
                "observations": s.mark[1],
                "until": to_store(min(s.until, _NEVER)),
                "body": _encode(s),
                "parts": text,
            }
            for pkey, key, s, text in parts
        ),
        key=lambda r: r["patient_key"],  # two transactions writing the same rows wait, they do not deadlock
    )
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(m.WorklistSummary)
    stmt = stmt.on_conflict_do_update(
        index_elements=["patient_key"],
        set_={c: getattr(stmt.excluded, c) for c in ("mark", "observations", "until", "body", "parts")},
    )
    for n in range(0, len(rows), 1_000):
        session.execute(stmt, rows[n : n + 1_000])


def recall_marked(session: Session, keys: Iterable[str]) -> dict[str, tuple[str, int, datetime, Summary, str]]:
    """Patient key -> (``mark_key``, Observation count, until, summary (its mark holds the count alone), running
    parts' text) of the kept parts of these patients that have running parts: what ingest grows."""
    wanted = sorted(keys)
    out: dict[str, tuple[str, int, datetime, Summary, str]] = {}
    table = m.WorklistSummary
    for chunk in chunks(session, wanted):
        rows = session.execute(
            select(table.patient_key, table.mark, table.observations, table.until, table.body, table.parts).where(
                among(session, table.patient_key, chunk)
            )
        )
        for pkey, mark, observations, until, body, text in rows:
            if observations is not None and text is not None:
                until = until.replace(tzinfo=UTC) if until.tzinfo is None else until
                out[pkey] = (mark, observations, until, _decode(body, (None, observations), until), text)
    return out


def merge_latest(latest: Iterable[Reading], readings: Iterable[Reading]) -> tuple[Reading, ...]:
    """The newest reading per measurement of ``latest`` and ``readings``; of two at one time the lower id (as the
    worklist's ``_latest`` ranks them)."""
    out = {r.measurement: r for r in latest}
    for reading in readings:
        found = out.get(reading.measurement)
        if found is None or (reading.effective, found.id) > (found.effective, reading.id):
            out[reading.measurement] = reading
    return tuple(out.values())
