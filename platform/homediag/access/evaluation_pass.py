"""One pass over the readings of an evaluation export's part: every stored Observation in a scope the caller
(``access/evaluation.py``) decided is read once, as text (its ``served_json``, else its resource), and parsed
once with orjson in Python. From that one parse come the tidy page's component rows, the device-time flag and
monitoring's measured values for the alerts' triage.

Why not the engines' JSON functions: SQLite 3.40 parses a resource again for every JSON function called on it,
and PostgreSQL expanded every resource's components in a ``LATERAL`` join and sorted the joined rows; a parse
in orjson costs a few microseconds. No ``ORDER BY`` either: the rows of a few patients at a time are sorted in
Python on (patient key, time, id), the order the pages always had. Nothing here decides or audits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import ColumnElement, Connection, Select, String, Text, cast, func, select

from homediag.bounded import Bounded
from homediag.clock import from_store
from homediag.fhir_profiles.builder import EXT_DEVICE_TIME
from homediag.monitoring.triage import Value, measures_of
from homediag.store import models as m

MEMO_ENTRIES = 10_000  # distinct (code, valueQuantity, components) remembered within a part: about 25 MB at most
FETCH_ROWS = 2_000  # rows fetched from the cursor at once (each holds a resource's text until it is parsed)

# a component row: (code as JSON text, value, unit, valueBoolean, whether it has a valueQuantity); an
# Observation without components has one row of Nones (as the outer join to its components had)
Component = tuple[str | None, Any, Any, Any, bool]
NO_COMPONENT: tuple[Component, ...] = ((None, None, None, None, False),)


class Reading(NamedTuple):
    """One stored Observation as the pass reads it: the store's columns (times as the engine's text) and what
    comes from its parsed JSON."""

    id: str
    patient_key: str
    code: str
    value: float | None
    unit: str | None
    effective: str
    gateway: str | None
    received: str | None
    device: str | None
    adapter: str | None
    status: str
    top_bool: Any  # valueBoolean
    top_qty: bool  # whether it has a valueQuantity
    clock_off: bool  # the device-time extension says the gateway's time stands in
    components: tuple[Component, ...]
    values: tuple[Value, ...]  # monitoring's measured values (``measures_of``)


def _query(scope: ColumnElement[bool]) -> Select[Any]:
    o = m.Observation
    return select(
        o.id,
        o.patient_key,
        o.code,
        o.value,
        o.unit,
        # times as text, parsed by Arrow (the DateTime type's per-row processing costs more than the rest)
        cast(o.effective_start, String),
        cast(o.gateway_received_at, String),
        cast(o.received_at, String),
        o.device_id,
        o.adapter,
        o.status,
        func.coalesce(o.served_json, cast(o.resource, Text)),
    ).where(scope)


def _component(part: Any) -> Component:
    if not isinstance(part, dict):
        return NO_COMPONENT[0]
    code = part.get("code")
    quantity = part.get("valueQuantity")
    value = unit = None
    if isinstance(quantity, dict):
        value = quantity.get("value")
        unit = quantity.get("code")
        if unit is None:
            unit = quantity.get("unit")
    text = None if code is None else orjson.dumps(code).decode()
    return (text, value, unit, part.get("valueBoolean"), "valueQuantity" in part)


Measured = tuple[tuple[Component, ...], tuple[Value, ...]]


def _measured(doc: dict[str, Any], memo: Bounded[bytes, Measured]) -> Measured:
    """The component rows and monitoring's values of a parsed resource: they depend only on its code,
    valueQuantity and components, whose JSON (orjson's, exact) keys a memory (many readings share them)."""
    key = orjson.dumps((doc.get("code"), doc.get("valueQuantity"), doc.get("component")))
    found = memo.get(key)
    if found is None:
        parts = doc.get("component")
        components = tuple(_component(p) for p in parts) if isinstance(parts, list) and parts else NO_COMPONENT
        found = memo.remember(key, (components, tuple(measures_of(doc))))
    return found


def parse(row: Sequence[Any], memo: Bounded[bytes, Measured]) -> Reading:
    """A fetched row (``_query``'s columns) as a ``Reading``: its resource's text parsed once."""
    doc = orjson.loads(row[11])
    extensions = doc.get("extension")
    clock_off = isinstance(extensions, list) and any(
        isinstance(e, dict) and e.get("url") == EXT_DEVICE_TIME for e in extensions
    )
    return Reading(
        *row[:11],  # type: ignore[arg-type]
        doc.get("valueBoolean"),
        "valueQuantity" in doc,
        clock_off,
        *_measured(doc, memo),
    )


def readings(conn: Connection, scope: ColumnElement[bool], memo: Bounded[bytes, Measured]) -> list[Reading]:
    """Every Observation in ``scope`` (keep it to a few patients: the list is held), in patient, time and id
    order."""
    result = conn.execute(_query(scope), execution_options={"stream_results": True, "max_row_buffer": FETCH_ROWS})
    out = [parse(row, memo) for rows in result.partitions(FETCH_ROWS) for row in rows]
    out.sort(key=lambda r: (r.patient_key, r.effective, r.id))
    return out


def aware(text: str) -> datetime:
    """A time as the engine's text (``CAST(... AS VARCHAR)``), aware UTC."""
    return from_store(datetime.fromisoformat(text))


@dataclass
class Chunk:
    """The readings of a few patients and the span of their times (aware UTC)."""

    rows: list[Reading]

    @property
    def span(self) -> tuple[datetime, datetime]:
        times = [r.effective for r in self.rows]
        return aware(min(times)), aware(max(times))


def chunks(conn: Connection, keys: list[str], scope_of: Any, size: int) -> Iterator[Chunk]:
    """``readings`` for ``size`` patients at a time (``keys`` sorted), ``scope_of(keys)`` their scope."""
    memo: Bounded[bytes, Measured] = Bounded(MEMO_ENTRIES)
    for i in range(0, len(keys), size):
        part = keys[i : i + size]
        rows = readings(conn, scope_of(part), memo)
        if rows:
            yield Chunk(rows)
