"""Ingest grows each patient's kept worklist part (``worklist_kept``) by the readings it has just stored, in its own
transaction, so that the worklist's next view (the morning: every patient has a new reading) reads the kept parts
as they are instead of reading the new readings and writing 500 parts.

A part is grown only as a view would grow it (``WorklistReads._with_added``): its running parts are kept and finish
its status now (``worklist.refinished``: before its ``parts_until``, even when its ``until`` has passed, the next
morning), its settings have no weight-change rule (a weight's triage looks back), and the new readings are
all dated after its latest reading, not ahead of now and inside the consent window it was read from; the part's
Observation count grows by the readings stored (the mark's other parts, window, acknowledgements, reviews,
settings, do not change by ingest). Anything else leaves the part as it is: its count is then behind the
patient's and the next view computes it (grown or whole). Two ingests of one patient at once both add their own
readings to the count they read, so the later one's part counts fewer than the patient has and is not used.

It runs just before the ingest transaction commits (a session event), when the uploads of a batch are written
too (a reading's gateway is its upload's sender), in a savepoint: a failure leaves the parts behind and never
refuses the readings. Decides nothing and reads no patient data for anyone: the part
is used only by a worklist view that has decided the patient may be shown.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event
from sqlalchemy.orm import Session

from homediag.monitoring import store as monitoring_store
from homediag.monitoring.ingested import Ingested

from . import worklist_kept
from .readings import Shape, aware, reading_from
from .worklist import ADHERENCE_DAYS, device_and_gateway, refinished

_PENDING = "homediag.worklist_grown"
log = logging.getLogger(__name__)


@dataclass
class _Pending:
    rows: list[dict[str, Any]] = field(default_factory=list)
    histories: dict[str, list[monitoring_store.SettingsVersion]] = field(default_factory=dict)
    triaged: Ingested = field(default_factory=dict)
    shapes: dict[str, Shape] = field(default_factory=dict)


def grow_when_committed(
    session: Session,
    rows: Sequence[dict[str, Any]],
    histories: dict[str, list[monitoring_store.SettingsVersion]],
    triaged: Ingested,
    shapes: dict[str, Shape],
) -> None:
    """Grow the kept worklist parts of the patients of ``rows`` (Observation rows stored now, their settings
    histories, values and triages, and shapes) just before ``session`` commits."""
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = _Pending()
        event.listen(session, "before_commit", _grow_pending, once=True)
    pending.rows.extend(rows)
    pending.histories.update(histories)
    pending.triaged.update(triaged)
    pending.shapes.update(shapes)


def _grow_pending(session: Session) -> None:
    """Grow the parts; their write in a savepoint: a part not grown is computed by the next view, but a reading not
    stored is lost, so a failure here never refuses the readings (it is logged; the parts stay behind). The reads
    (the kept parts, and the devices and gateways of those grown) need no savepoint: a read that fails means the
    database is away, which fails the commit anyway (503, and the gateway sends again). Most ingests find no part
    to grow (no view has kept one since): they pay one read and no savepoint."""
    pending = session.info.pop(_PENDING, None)
    if pending is None or not pending.rows:
        return
    try:
        parts = grow(session, pending, datetime.now(UTC))
        if parts:
            with session.begin_nested():
                worklist_kept.keep_marked(session, parts)
    except Exception:
        log.exception("the kept worklist parts of %d readings were not grown", len(pending.rows))


def grow(session: Session, pending: _Pending, now: datetime) -> list[tuple[str, str, worklist_kept.Summary, str]]:
    """The kept parts grown by ``pending``'s readings as of ``now`` (see the module's docstring), to keep with
    ``worklist_kept.keep_marked``."""
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for row in pending.rows:
        by_patient.setdefault(row["patient_key"], []).append(row)
    kept = worklist_kept.recall_marked(session, by_patient)
    start = now - timedelta(days=ADHERENCE_DAYS)
    grown: list[tuple[str, str, worklist_kept.Summary, str, list[dict[str, Any]]]] = []
    for pkey, (mark, observations, _, old, text) in kept.items():
        history = pending.histories.get(pkey)
        if history is None or old.looks_back or old.parts_until is None or not old.at <= now < old.parts_until:
            continue
        decoded = worklist_kept.decode_parts(text, None, history)
        if decoded is None:
            continue
        parts, window, zone_name = decoded
        since = old.since or start
        rows = sorted(by_patient[pkey], key=lambda r: (r["effective_start"], r["id"]))
        added: list[monitoring_store.TriagedReading] = []
        for row in rows:
            values, found = pending.triaged.get((pkey, row["id"]), ((), None))
            at = aware(row["effective_start"])
            naive = row["effective_start"]
            inside = any((s is None or s <= naive) and (e is None or naive < e) for s, e in window)
            if found is None or at is None or not since < at <= now or not inside:
                break
            added.append(
                monitoring_store.TriagedReading(
                    row["id"], None, at, None, None, found, monitoring_store.in_force(history, at), False, values
                )
            )
        if len(added) != len(rows):
            continue
        zone = ZoneInfo(zone_name)
        grown_parts = parts.copy().fold(added, start)
        last = added[-1].effective
        finished = refinished(old, grown_parts, now, zone, [r.effective for r in added])
        summary = replace(
            finished,
            mark=(None, observations + len(added)),
            since=last,
            at_since=frozenset(r.id for r in added if r.effective == last),
        )
        grown.append((pkey, mark, summary, _text(finished.parts, zone_name, window), rows))
    if not grown:
        return []
    shown = [SimpleNamespace(**row) for *_, rows in grown for row in rows]
    devices, gateways = device_and_gateway(session, shown)
    readings: dict[str, list[Any]] = {}
    for item in shown:
        shape = pending.shapes.get(item.id)
        if shape is None or shape.about is not None:
            continue
        device, gateway = devices.get(item.device_id or "", ""), gateways.get(item.upload_id or "", "")
        reading = reading_from(shape, item, device, gateway)
        if reading is not None:
            readings.setdefault(item.patient_key, []).append(reading)
    return [
        (pkey, mark, replace(s, latest=worklist_kept.merge_latest(s.latest, readings.get(pkey, []))), text)
        for pkey, mark, s, text, _ in grown
    ]


def _text(parts: Any, zone: str, window: worklist_kept.Intervals) -> str:
    return worklist_kept.encode_parts(parts, zone, SimpleNamespace(intervals=window))
