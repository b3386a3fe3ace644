"""Charts drawn ahead: after ingest's commit, the charts (and table rows) of a patient page shown before are
drawn again with the new readings added, off the request path, so that the next view of that page finds them
drawn (``charts.trend_svg``'s memory and ``drawn_chart``) instead of drawing them while the clinician waits.

What is drawn ahead is built only from what is already held plus the new readings as ingest stored them:

- the last shown page of each patient (its language, period, zone, each measurement's readings and the bands),
  held in process as the page's decided read made them (``shown``): no new exposure, the page's SVG holds all of
  it already;
- the new readings, by the Observation ids ingest answered, shaped, flagged and triaged under the settings in force
  by the access layer's own functions (``access.patient_page.ingested_readings``), only for patients whose page is
  held.

It decides nothing: a drawn chart is kept by the SHA-256 of everything it shows, and a page finds only the chart
whose key it computed from its own decided, audited read. A guess that is wrong (an acknowledgement, a threshold
or consent change, a reading the viewer may not see, the period moved past a reading) is a chart nobody asks for,
pruned with the others after ``drawn.KEEP_DAYS``. Only views actually shown are drawn (one per patient: its last),
and only for patients with a new reading, by one thread per process (``Drawer``), a job at a time, started as soon
as the ingest has answered, each patient's reading and drawing only while no worklist view or patient page is being
served in the process (``serving``). matplotlib draws in the drawing processes (``chart_process``), off the
interpreter's lock, the drawer's charts one at a time (one drawing process busy beside the views a client asks for
right after its upload, the other free for a page's own); the drawer's own work (the new readings read, triaged and
built into the charts' inputs) is ~10 ms of CPU a patient: the readings' values, triages, shapes and patients are
those ingest remembered in this process, and the unchanged points of the page held are kept (``patient_view``). A
page asked for while its patient's charts are being drawn ahead waits for them (``wait``), and the drawer then
starts the rest of them at once; one asked for before draws its own, in the drawing processes too and side by side,
which the drawer then finds drawn. Measured: ``docs/performance.md`` (h12predraw, h12chartproc, h12drawer).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from homediag.access import ingested
from homediag.access.patient_page import ingested_readings
from homediag.access.readings import Reading
from homediag.bounded import Bounded
from homediag.runtime import Runtime

from . import drawn

log = logging.getLogger(__name__)

Period = tuple[date, date, datetime, datetime]  # first and last day, and the period as instants


@dataclass
class Shown:
    """A patient page as last shown (its charts' and tables' inputs)."""

    lang: str
    zone: str
    chosen: int | None  # a page of the last ``chosen`` days moves with the day; a chosen period does not
    period: Period
    readings: dict[str, list[Reading]]  # by measurement, in the page's order
    bands: list[Any]


# (id of the runtime, patient key): the last shown page. A 90-day page of six measurements holds ~1,000 readings
# (~0.5 MB), a 14-day page of a cuff ~30: a morning's pages of a ward in one worker, not every patient's (at most
# ~50 MB of 90-day pages beside the workers' 300 MB budget)
_SHOWN: Bounded[tuple[int, str], Shown] = Bounded(100)
_shown_lock = threading.Lock()


def shown(
    rt: Runtime,
    patient_key: str,
    lang: str,
    chosen: int | None,
    period: Period,
    readings: dict[str, list[Reading]],
    bands: list[Any],
) -> None:
    """Hold the inputs of the page of ``patient_key`` just shown (its decided read's readings and bands)."""
    held = Shown(lang, rt.local_zone.key, chosen, period, {k: list(v) for k, v in readings.items()}, list(bands))
    ingested.remember_here()  # the new readings' values, triages and shapes not read back by ``draw_ahead``
    with _shown_lock:
        _SHOWN.remember((id(rt), patient_key), held)


def held(rt: Runtime) -> dict[str, Shown]:
    """The shown pages held for ``rt``, by patient key."""
    with _shown_lock:
        return {key: page for (rt_id, key), page in _SHOWN.items() if rt_id == id(rt)}


def after_ingest(rt: Runtime, answer_body: dict[str, Any]) -> None:
    """Queue the Observations ``POST /ingest`` created (its answer's body) for drawing ahead; nothing when no page
    is held for this runtime (no read at all)."""
    ids = [
        str(o["id"])
        for result in answer_body.get("results") or [answer_body]
        if isinstance(result, dict)
        for o in result.get("observations") or []
        if isinstance(o, dict) and o.get("outcome") == "created" and o.get("id")
    ]
    if ids and _holds_any(rt):
        DRAWER.submit(rt, ids)


def _holds_any(rt: Runtime) -> bool:
    """Whether a shown page is held for ``rt`` (every ingest request asks: no dictionary of them is built)."""
    with _shown_lock:
        return any(rt_id == id(rt) for rt_id, _ in _SHOWN)


class Drawer:
    """One thread per process drawing ahead, a job (one ingest's new readings) at a time."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Runtime, list[str]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def submit(self, rt: Runtime, ids: list[str]) -> None:
        with self._start:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="homediag-predraw", daemon=True)
                self._thread.start()
        self._jobs.put((rt, ids))

    def settle(self, timeout: float | None = None) -> None:
        """Wait until every job queued so far is done (the bench and tests; nothing in service waits)."""
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (self._jobs.join(), done.set()), daemon=True)
        waiter.start()
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            while True:  # the jobs queued meanwhile, drawn together (a patient's readings of several uploads once)
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            merged: dict[int, tuple[Runtime, list[str]]] = {}
            for rt, ids in jobs:
                merged.setdefault(id(rt), (rt, []))[1].extend(ids)
            try:
                for rt, ids in merged.values():
                    try:
                        draw_ahead(rt, ids)
                    except Exception:  # a chart not drawn ahead is drawn by the page
                        log.warning("drawing ahead failed", exc_info=True)
            finally:
                for _ in jobs:
                    self._jobs.task_done()


DRAWER = Drawer()


QUIET_WAIT = 10.0  # seconds the drawer waits for the views being served to finish before drawing anyway
_serving = [0]  # the worklist and patient page requests this process is serving now
_quiet = threading.Condition()


@contextlib.contextmanager
def serving() -> Iterator[None]:
    """Around a page a clinician waits for (the worklist, the patient page): the drawer starts no patient's reading
    or drawing meanwhile."""
    with _quiet:
        _serving[0] += 1
    try:
        yield
    finally:
        with _quiet:
            _serving[0] -= 1
            _quiet.notify_all()


def _when_quiet() -> None:
    with _quiet:
        _quiet.wait_for(lambda: _serving[0] == 0, QUIET_WAIT)


_busy: set[tuple[int, str]] = set()  # (id of the runtime, patient key) being drawn ahead now
_busy_changed = threading.Condition()


def _quiet_between(rt: Runtime, patient_key: str) -> None:
    """Between two steps of a patient's drawing: wait for the pages being served, the patient not marked as being
    drawn meanwhile (its page, if asked for then, starts its own charts rather than wait for this)."""
    with _quiet:
        if _serving[0] == 0:
            return
    with _busy_changed:
        _busy.discard((id(rt), patient_key))
        _busy_changed.notify_all()
    _when_quiet()
    with _busy_changed:
        _busy.add((id(rt), patient_key))


_waiting: dict[tuple[int, str], int] = {}  # (id of the runtime, patient key): pages waiting for it (``wait``)


def wait(rt: Runtime, patient_key: str, timeout: float = 2.0) -> None:
    """Wait (at most ``timeout`` seconds) while the patient's page is being drawn ahead: a page asked for then
    finds its charts drawn instead of drawing them a second time beside the drawer (which starts the charts it has
    not started yet at once, side by side)."""
    key = (id(rt), patient_key)
    with _busy_changed:
        _waiting[key] = _waiting.get(key, 0) + 1
        try:
            _busy_changed.wait_for(lambda: key not in _busy, timeout)
        finally:
            _waiting[key] -= 1
            if not _waiting[key]:
                del _waiting[key]


def _waited_for(rt: Runtime, patient_key: str) -> bool:
    with _busy_changed:
        return (id(rt), patient_key) in _waiting


def draw_ahead(rt: Runtime, ids: list[str]) -> int:
    """Draw the charts and tables of every held page whose patient has a new reading among ``ids``, with it;
    returns how many blocks were drawn."""
    from sqlalchemy import select

    from homediag.store import models as m

    from .routes import period

    pages = held(rt)
    if not pages:
        return 0
    count = 0
    _when_quiet()
    known, others = ingested.patients_of(ids)  # ingest in this process remembered them
    found: dict[str, list[str]] = {}
    for oid, pkey in known.items():
        if pkey in pages:
            found.setdefault(pkey, []).append(oid)
    if others:
        with rt.sessions() as session:
            for oid, pkey in session.execute(
                select(m.Observation.id, m.Observation.patient_key).where(
                    m.Observation.id.in_(others), m.Observation.patient_key.in_(list(pages))
                )
            ):
                found.setdefault(pkey, []).append(oid)
    found = {pkey: new_ids for pkey, new_ids in found.items() if pages[pkey].zone == rt.local_zone.key}
    try:
        for pkey, new_ids in found.items():
            _when_quiet()
            with _shown_lock:  # as shown last: a page may have been shown meanwhile
                page = _SHOWN.get((id(rt), pkey)) or pages[pkey]
            with _busy_changed:
                _busy.add((id(rt), pkey))
            when = page.period if page.chosen is None else period(rt, page.chosen, None, None)[1:]
            with rt.sessions.begin() as session:  # short: the drawing below holds no transaction
                new = ingested_readings(session, pkey, new_ids, when[2], when[3])
            if new:
                count += _draw_page(rt, pkey, page, when, new)
            with _busy_changed:
                _busy.discard((id(rt), pkey))
                _busy_changed.notify_all()
    finally:
        with _busy_changed:
            _busy.difference_update((id(rt), pkey) for pkey in found)
            _busy_changed.notify_all()
    return count


def _draw_page(rt: Runtime, pkey: str, page: Shown, when: Period, new: list[Reading]) -> int:
    """Draw the blocks of ``page`` that ``new`` readings (or the period moved with the day) change; hold the page
    with them. Returns how many blocks were drawn."""
    from .patient_view import measurement_blocks, ordered

    first, last, start, end = when
    new_ids = {r.id for r in new}
    by_measurement: dict[str, list[Reading]] = {}
    for key, readings in page.readings.items():
        kept = [r for r in readings if start <= r.effective < end and r.id not in new_ids]
        if kept:
            by_measurement[key] = kept
    for reading in new:
        by_measurement.setdefault(reading.measurement, []).append(reading)
    changed = {r.measurement for r in new}
    before = ordered(page.readings)
    wanted = []
    for n, key in enumerate(ordered(by_measurement)):
        readings = by_measurement[key] = sorted(by_measurement[key], key=lambda r: (r.effective, r.id))
        moved = key not in before or before.index(key) != n
        if key in changed or moved or when != page.period:
            wanted.append((n, key, readings))
    _quiet_between(rt, pkey)
    kept_charts = drawn.KeptCharts(rt)
    try:  # one chart at a time in the drawing processes; the rest side by side once the page waits for them
        rest = wanted
        while rest:
            now = rest if _waited_for(rt, pkey) else rest[:1]
            measurement_blocks(now, page.bands, page.lang, first, last, start, end, rt, kept_charts)
            rest = rest[len(now) :]
    finally:
        kept_charts.close()
    with _shown_lock:  # unless a page was shown meanwhile: its decided read is held, not this guess
        if _SHOWN.get((id(rt), pkey)) is page:
            _SHOWN[(id(rt), pkey)] = Shown(page.lang, page.zone, page.chosen, when, by_measurement, page.bands)
    return len(wanted)
