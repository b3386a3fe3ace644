"""Trend charts, drawn on the server by matplotlib as SVG and put inline in the page.

Why server-side SVG: the page needs no chart script at all (the Content-Security-Policy allows no
inline script or style, and no other host), the chart prints as it shows, and the browser tests can
count its points (the drawing itself: ``chart_draw``). The table beside every chart holds the same readings for
keyboard and screen-reader users.

Drawing is the patient page's slowest part (tens of milliseconds a chart), so a drawn chart is remembered in
process by everything it shows (``trend_svg``'s key: every point with its value, colour and tooltip, the bands,
the lines, the period, the language): a pure function of its inputs, so a new reading, a re-triage or another
period simply makes another key, and nothing can go stale. The data reach it only through the decided read of the page.
A chart not found is drawn in a drawing process (``chart_process``: matplotlib's CPU off the server's
interpreter lock), and a page's charts side by side (``chart``: each started, then had); a chart being drawn is
waited for by anyone else who needs it, not drawn twice.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from zoneinfo import ZoneInfo

from . import chart_draw, chart_process
from .chart_draw import BAND_FILL, COLOURS, MARKERS, Band, Line, Point, Series
from .drawn import KeptCharts, chart_key

__all__ = ["BAND_FILL", "COLOURS", "MARKERS", "Band", "Line", "Point", "Series", "chart", "trend_svg"]

log = logging.getLogger(__name__)
_lock = threading.Lock()  # the two memories below
_DRAWN: OrderedDict[tuple[object, ...], str] = OrderedDict()  # the last drawn charts, by all they show
_DRAWN_LIMIT = 200
_DRAWING: dict[tuple[object, ...], Future[str]] = {}  # the charts being drawn now, by all they show


def trend_svg(
    chart_id: str,
    title: str,
    unit: str,
    series: list[Series],
    bands: list[Band],
    lines: list[Line],
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    decimal_comma: bool,
    kept: KeptCharts | None = None,
) -> str:
    """The chart as an inline ``<svg>`` element (a string), its ids prefixed with ``chart_id``: remembered in
    process, else from the store's drawn charts (``kept``), else drawn (and kept)."""
    return chart(chart_id, title, unit, series, bands, lines, start, end, zone, decimal_comma, kept)()


def chart(
    chart_id: str,
    title: str,
    unit: str,
    series: list[Series],
    bands: list[Band],
    lines: list[Line],
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    decimal_comma: bool,
    kept: KeptCharts | None = None,
) -> Callable[[], str]:
    """``trend_svg``'s chart, had by calling what this returns: a chart not found is being drawn meanwhile in a
    drawing process, so a page starts all its charts before it has any (and renders its tables meanwhile)."""
    key = (
        chart_id,
        title,
        unit,
        tuple(
            (s.key, s.label, tuple((p.at, p.value, p.colour, p.title, p.reading_id) for p in s.points)) for s in series
        ),
        tuple(bands),
        tuple(lines),
        start,
        end,
        zone.key,
        decimal_comma,
    )
    arguments = (chart_id, title, unit, series, bands, lines, start, end, zone, decimal_comma)
    with _lock:
        found = _found(key, arguments)
    if found is not None:
        return found
    stored = chart_key(key) if kept is not None else ""
    svg = kept.get(stored) if kept is not None else None
    if svg is not None:
        _remember(key, svg)
        return lambda: svg
    with _lock:
        found = _found(key, arguments)  # drawn or started by another thread meanwhile
        if found is not None:
            return found
        drawing = _DRAWING[key] = _drawing(arguments)
    drawing.add_done_callback(lambda done: _drawn(key, done))

    def had() -> str:
        svg = _result(drawing, arguments)
        if kept is not None:
            kept.put(stored, svg)
        return svg

    return had


def _found(key: tuple[object, ...], arguments: tuple[object, ...]) -> Callable[[], str] | None:
    """The chart remembered, or being drawn (its result then), by ``key``; the caller holds ``_lock``."""
    svg = _DRAWN.get(key)
    if svg is not None:
        _DRAWN.move_to_end(key)
        return lambda: svg
    drawing = _DRAWING.get(key)
    if drawing is not None:
        return lambda: _result(drawing, arguments)
    return None


def _drawing(arguments: tuple[object, ...]) -> Future[str]:
    """A chart being drawn in a drawing process (tests and the bench count the charts drawn here); with none
    configured (``HOMEDIAG_CHART_PROCESSES=0``) drawn here, in this thread."""
    if chart_process.POOL.processes == 0:
        drawn: Future[str] = Future()
        drawn.set_result(chart_draw.draw(*arguments))  # type: ignore[arg-type]
        return drawn
    return chart_process.POOL.submit(arguments)


def _result(drawing: Future[str], arguments: tuple[object, ...]) -> str:
    """The drawing's SVG; if the drawing process did not draw it, the chart drawn in this process."""
    try:
        return drawing.result()
    except Exception:  # ``chart_process.DrawingFailed``, or a drawing process that could not be started again
        log.warning("a chart was not drawn by a drawing process: drawn here", exc_info=True)
        return chart_draw.draw(*arguments)  # type: ignore[arg-type]


def _drawn(key: tuple[object, ...], drawing: Future[str]) -> None:
    """A chart drawn (or failed): remembered, no longer being drawn."""
    with _lock:
        if _DRAWING.get(key) is drawing:
            del _DRAWING[key]
    if drawing.exception() is None:
        _remember(key, drawing.result())


def _remember(key: tuple[object, ...], svg: str) -> None:
    with _lock:
        _DRAWN[key] = svg
        _DRAWN.move_to_end(key)
        while len(_DRAWN) > _DRAWN_LIMIT:
            _DRAWN.popitem(last=False)


def warm() -> None:
    """Start the drawing processes (a worklist view: patient pages follow), if not started; returns at once."""
    try:
        chart_process.POOL.start()
    except OSError:  # then each chart says so, and is drawn in this process
        log.warning("the chart drawing processes could not be started", exc_info=True)
