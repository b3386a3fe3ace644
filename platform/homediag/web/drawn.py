"""Charts as drawn, and a patient page table's rows as rendered (``patient_view``), kept in the store (``drawn_chart``)
by the SHA-256 of everything they show, so that a freshly started server process does not draw a chart or render a
table it (or another worker) drew already: drawing is most of a patient page's first view. A chart is found only by
its key, which is made from its points (values, times, colours, reading ids), bands, labels, period and language: a
page can only ask for the chart it has just been allowed to show, so this decides nothing. Rows drawn more than
``KEEP_DAYS`` ago are pruned (a page's period moves with the day, so its charts are not asked for again).
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from homediag.clock import utcnow
from homediag.monitoring import persisted
from homediag.runtime import Runtime
from homediag.store import models as m

KEEP_DAYS = 3
_PRUNE_EVERY = 3600.0  # seconds, per process
_pruned = [0.0]
_lock = threading.Lock()


def chart_key(key: tuple[object, ...]) -> str:
    """The SHA-256 of a chart's key (``charts.trend_svg``: plain values, datetimes and frozen dataclasses)."""
    return hashlib.sha256(repr(key).encode()).hexdigest()


class KeptCharts:
    """The store's drawn charts, through ``rt``'s sessions (each call its own short transaction)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._reads: Session | None = None  # one session for a page's reads (``close``), not one per chart
        self._new: dict[str, str] = {}  # drawn or rendered by this page, written when it closes (one transaction)

    def get(self, key: str) -> str | None:
        if self._reads is None:
            self._reads = self.rt.sessions()
        return self._reads.execute(select(m.DrawnChart.svg).where(m.DrawnChart.key == key)).scalar()

    def close(self) -> None:
        """End the reads' session and write what the page drew (a page calls it when its charts and tables are
        made)."""
        if self._reads is not None:
            self._reads.close()
            self._reads = None
        if self._new:
            new, self._new = self._new, {}
            self._write(new)

    def put(self, key: str, svg: str) -> None:
        """Keep ``svg`` by ``key``: written with the page's others when it closes (a morning's page draws two charts
        and renders two tables: one transaction, not four)."""
        self._new[key] = svg

    def _write(self, new: dict[str, str]) -> None:
        now = utcnow()
        with self.rt.sessions.begin() as session:
            persisted.insert_new(
                session, m.DrawnChart, [{"key": key, "svg": svg, "drawn_at": now} for key, svg in new.items()]
            )
            with _lock:
                due = time.monotonic() - _pruned[0] > _PRUNE_EVERY
                if due:
                    _pruned[0] = time.monotonic()
            if due:
                session.execute(delete(m.DrawnChart).where(m.DrawnChart.drawn_at < now - timedelta(days=KEEP_DAYS)))
