"""Each patient's part of the web worklist kept in the store (``worklist_summary``), so that the first worklist
view of a freshly started process need not compute every patient's part again: a part is used only while what it
was computed from is unchanged (the SHA-256 of the worklist's mark: consent window, Observation count,
acknowledgements, reviews, settings versions, first reading dated ahead) and before the instant time alone may
change it (``until``). It holds no identity (names and dates of birth are read from the vault each view) and
decides nothing: the worklist has decided which patients it shows before it asks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from homediag.clock import to_store
from homediag.store import models as m

from .readings import Reading
from .triage import Assessment

FORMAT = 1  # the body's format and the computation's: a change makes every kept part unused
_CHUNK = 500

Part = tuple[datetime, tuple[Reading, ...], int, Assessment | None]  # until, latest, days measured, assessment


def mark_key(mark: tuple[Any, ...]) -> str:
    """The SHA-256 of a mark (its ``repr``: plain values, datetimes and the consent window's dataclass)."""
    return hashlib.sha256(repr((FORMAT, mark)).encode()).hexdigest()


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


def _encode(latest: Sequence[Reading], days: int, assessment: Assessment | None) -> str:
    a = assessment
    return json.dumps(
        {
            "latest": [_reading(r) for r in latest],
            "days": days,
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


def _decode(text: str) -> tuple[tuple[Reading, ...], int, Assessment | None]:
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
    return latest, body["days"], assessment


def recall(session: Session, marks: dict[str, tuple[Any, ...]], now: datetime) -> dict[str, Part]:
    """The kept parts of these patients that are still so: computed from the same mark, and ``now`` before their
    ``until``."""
    keys = sorted(marks)
    out: dict[str, Part] = {}
    table = m.WorklistSummary
    for n in range(0, len(keys), _CHUNK):
        rows = session.execute(
            select(table.patient_key, table.mark, table.until, table.body).where(
                table.patient_key.in_(keys[n : n + _CHUNK])
            )
        )
        for pkey, mark, until, body in rows:
            until = until.replace(tzinfo=UTC) if until.tzinfo is None else until
            if mark == mark_key(marks[pkey]) and now < until:
                out[pkey] = (until, *_decode(body))
    return out


def keep(
    session: Session, parts: Sequence[tuple[str, tuple[Any, ...], datetime, Sequence[Reading], int, Assessment | None]]
) -> None:
    """Keep (insert or replace) these patients' parts: (patient key, mark, until, latest, days, assessment)."""
    if not parts:
        return
    rows = sorted(
        (
            {
                "patient_key": pkey,
                "mark": mark_key(mark),
                "until": to_store(min(until, datetime(9999, 1, 1, tzinfo=UTC))),
                "body": _encode(latest, days, assessment),
            }
            for pkey, mark, until, latest, days, assessment in parts
        ),
        key=lambda r: r["patient_key"],  # two transactions writing the same rows wait, they do not deadlock
    )
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(m.WorklistSummary)
    stmt = stmt.on_conflict_do_update(
        index_elements=["patient_key"],
        set_={"mark": stmt.excluded.mark, "until": stmt.excluded.until, "body": stmt.excluded.body},
    )
    for n in range(0, len(rows), 1_000):
        session.execute(stmt, rows[n : n + 1_000])
