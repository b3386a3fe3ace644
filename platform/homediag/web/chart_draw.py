"""A trend chart drawn by matplotlib as SVG: the drawing alone, from plain inputs (``Series``, ``Band``, ``Line``,
the period, the zone), with nothing but the standard library and matplotlib imported, so that it runs in the
chart drawing processes (``chart_process``) as well as in the server's own (``charts.trend_svg`` decides where).

matplotlib writes its colours as ``style`` attributes, which a strict CSP blocks inside an HTML page;
``_presentational`` turns them into SVG presentation attributes (``fill``, ``stroke``, ...), which it does not.
Each point becomes an element of class ``point`` carrying a ``<title>`` (value, device time, device, gateway,
arrival): a tooltip on hover. A blood-pressure chart draws each reading as a bar from its diastolic to its
systolic value, the two points at its ends, the thresholds as lines. A chart is drawn on a figure kept per time
zone, number format and kind (``_prepared``), emptied of its data after each chart: making the figure, its axes
and ticks again was about a third of a chart's time.
"""

from __future__ import annotations

import io
import math
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"


def _svg_prefixes() -> None:
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)


_svg_prefixes()

# Triage colours (WCAG AA against white for marks), and the neutral one of a reading not assessed.
COLOURS = {"red": "#b71c1c", "yellow": "#8a6100", "green": "#1b5e20", "blue": "#0d47a1", None: "#37474f"}
BAND_FILL = {"red": "#ffcdd2", "yellow": "#fff3c4", "green": "#dcedc8"}
MARKERS = ("o", "^", "v", "s", "D")
_lock = threading.Lock()  # matplotlib's state (rcParams, font cache) is not thread-safe


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float
    colour: str | None
    title: str
    reading_id: str


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    points: list[Point]


@dataclass(frozen=True)
class Band:
    low: float | None
    high: float | None
    colour: str
    label: str


@dataclass(frozen=True)
class Line:
    """A threshold drawn as a line (a chart of several series, e.g. systolic and diastolic, has lines, not bands)."""

    value: float
    colour: str
    label: str


def draw(
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
) -> str:
    # matplotlib (with numpy, ~40 MB) is imported on the first chart, not by every server worker at start
    import matplotlib
    import matplotlib.dates as mdates

    with _lock:
        with matplotlib.rc_context(_RC | {"svg.hashsalt": chart_id}):
            fig, ax = _prepared(zone, decimal_comma, bool(bands))
            try:
                values = [p.value for s in series for p in s.points]
                edges = [e for b in bands for e in (b.low, b.high) if e is not None]
                floor = min([*values, *edges]) if values or edges else 0.0
                top = max([*values, *edges]) if values or edges else 1.0
                margin = (top - floor) * 0.15 or 1.0
                if bands:
                    ax.set_ylim(floor - margin, top + margin)
                for band in bands:
                    ax.axhspan(
                        band.low if band.low is not None else floor - 10 * margin,
                        band.high if band.high is not None else top + 10 * margin,
                        color=BAND_FILL.get(band.colour, "#eeeeee"),
                        zorder=0,
                        linewidth=0,
                    )
                for line in lines:
                    ax.axhline(
                        line.value, color=COLOURS.get(line.colour, "#555555"), linewidth=0.9, linestyle="--", zorder=0
                    )
                ranges = _ranges(series)
                if ranges:  # blood pressure: each reading a bar from its diastolic to its systolic value, all one path
                    ax.plot(
                        mdates.date2num([at for at, _, _ in ranges for _ in range(3)]),
                        [y for _, low, high in ranges for y in (low, high, math.nan)],
                        color="#b0bec5",
                        linewidth=2.4,
                        solid_capstyle="butt",
                        zorder=1,
                    )
                for n, s in enumerate(series):
                    xs = mdates.date2num([p.at for p in s.points])  # once for the line and the points
                    ys = [p.value for p in s.points]
                    (joined,) = ax.plot(xs, ys, color="#90a4ae", linewidth=1, zorder=1)
                    joined.set_gid(f"{chart_id}-line-{n}")
                    collection = ax.scatter(
                        xs,
                        ys,
                        c=[COLOURS.get(p.colour, COLOURS[None]) for p in s.points] or None,
                        marker=MARKERS[n % len(MARKERS)],
                        s=28,
                        zorder=2,
                        label=s.label,
                    )
                    collection.set_gid(f"{chart_id}-series-{n}")
                    # clipped as one group, by the clip its line has (``_presentational``): matplotlib wraps each
                    # point of a clipped collection in a clipped group of its own
                    collection.set_clip_on(False)
                ax.set_xlim(start.astimezone(zone), end.astimezone(zone))
                _date_ticks(ax, start, end, zone)
                ax.set_ylabel(unit)
                if len(series) > 1:
                    ax.legend(loc="upper left", frameon=False, ncols=len(series), fontsize=9)
                buffer = io.StringIO()
                fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
            finally:
                try:
                    _emptied(ax)
                except Exception:  # a kept figure not emptied is not used again
                    _PREPARED.clear()
                    raise
    return _presentational(buffer.getvalue(), chart_id, title, series)


_RC = {"svg.fonttype": "none", "font.size": 10, "axes.formatter.use_locale": False}
_PREPARED: dict[tuple[str, bool, bool], tuple[Any, Any]] = {}  # (zone, decimal comma, banded): figure, axes


def _prepared(zone: ZoneInfo, decimal_comma: bool, banded: bool) -> tuple[Any, Any]:
    """A figure and its axes with everything a chart of this kind has before its data (size, margins, spines,
    grid, date ticks in ``zone``, the number format), made once and kept (``_emptied`` after each chart): making
    them, their ticks and their tick labels again was a third of a chart's time. The caller holds ``_lock`` and
    the rc context. A banded chart's y limits are set from its bands; any other's follow its data."""
    key = (zone.key, decimal_comma, banded)
    found = _PREPARED.get(key)
    if found is not None:
        return found
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 2.6), dpi=72)
    ax = fig.add_subplot()
    ax.xaxis_date(zone)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d.%m", tz=zone))
    if decimal_comma:
        ax.yaxis.set_major_formatter(_comma_formatter())
    ax.grid(axis="y", color="#e0e0e0", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.subplots_adjust(left=0.085, right=0.985, top=0.96, bottom=0.13)  # fixed: tight_layout costs a draw
    _PREPARED[key] = (fig, ax)
    return fig, ax


_TICKS: dict[tuple[datetime, datetime, str], Any] = {}  # (start, end, zone): where the date ticks are


def _date_ticks(ax: Any, start: datetime, end: datetime, zone: ZoneInfo) -> None:
    """The x axis's ticks where matplotlib's ``AutoDateLocator`` puts them for this period, found once per period
    (an axis asks its locator three times a drawing, and a period is drawn for every patient all day)."""
    from matplotlib.dates import AutoDateLocator
    from matplotlib.ticker import FixedLocator

    key = (start, end, zone.key)
    ticks = _TICKS.get(key)
    if ticks is None:
        auto = AutoDateLocator(tz=zone, maxticks=8)
        auto.set_axis(ax.xaxis)
        ticks = auto()
        if len(_TICKS) > 100:
            _TICKS.clear()
        _TICKS[key] = ticks
    ax.xaxis.set_major_locator(FixedLocator(ticks))


def _emptied(ax: Any) -> None:
    """``ax`` without the data of the chart just drawn: its bands, lines, points and legend removed, its data
    limits and colour cycle as a new axes has them."""
    for artist in [*ax.lines, *ax.collections, *ax.patches]:
        artist.remove()
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    ax.relim()
    ax.set_prop_cycle(None)


def _ranges(series: list[Series]) -> list[tuple[datetime, float, float]]:
    """(time, low, high) of each reading that has a point in both a "diastolic" and a "systolic" series."""
    found = {s.key: s for s in series}
    if "systolic" not in found or "diastolic" not in found:
        return []
    low = {p.reading_id: p.value for p in found["diastolic"].points}
    return [(p.at, low[p.reading_id], p.value) for p in found["systolic"].points if p.reading_id in low]


def _comma_formatter() -> object:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:g}".replace(".", ","))


_NOT_ATTRIBUTES = {"font"}


def _declarations(style: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in style.split(";"):
        name, _, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if not name:
            continue
        if name == "font":  # "10px 'DejaVu Sans'": the shorthand is no presentation attribute
            size, _, family = value.partition(" ")
            out["font-size"] = size
            out["font-family"] = family.replace("'", "") + ", sans-serif"
        else:
            out[name] = value
    return out


def _marks(group: ET.Element) -> list[ET.Element]:
    """The point marks of a scatter, in order: matplotlib writes them as ``<use>`` of a marker in ``<defs>``,
    or (for few points) as ``<path>`` elements of their own."""
    out: list[ET.Element] = []
    for child in group:
        if child.tag == f"{{{SVG_NS}}}defs":
            continue
        if child.tag in (f"{{{SVG_NS}}}use", f"{{{SVG_NS}}}path"):
            out.append(child)
        else:
            out.extend(_marks(child))
    return out


def _clip_of(group: ET.Element | None) -> str | None:
    """The ``clip-path`` of the first element in ``group`` that has one (a series' line: the axes' clip)."""
    if group is None:
        return None
    return next((e.get("clip-path") for e in group.iter() if e.get("clip-path")), None)


_DROPPED = {f"{{{SVG_NS}}}metadata", f"{{{SVG_NS}}}style"}
_HREF = f"{{{XLINK_NS}}}href"
_URL = re.compile(r"url\(#([^)]+)\)")


def _presentational(svg: str, chart_id: str, title: str, series: list[Series]) -> str:
    root = ET.fromstring(svg)
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in _DROPPED:
                parent.remove(child)
    shared: dict[str, list[tuple[str, str]]] = {}  # a style's presentation attributes: most marks share a few styles
    prefix = f"{chart_id}-"
    groups: dict[str, ET.Element] = {}
    for element in root.iter():
        attrib = element.attrib
        if not attrib:
            continue
        style = attrib.pop("style", None)
        if style:
            found = shared.get(style)
            if found is None:
                found = shared[style] = [(n, v) for n, v in _declarations(style).items() if n not in _NOT_ATTRIBUTES]
            for name, value in found:
                attrib[name] = value
        ident = attrib.get("id")
        if ident is not None:
            if not ident.startswith(chart_id):
                attrib["id"] = prefix + ident
            elif ident.startswith((f"{prefix}series-", f"{prefix}line-")):
                groups[ident] = element
        for attr in ("clip-path", "mask"):
            if attr in attrib:
                attrib[attr] = _URL.sub(rf"url(#{prefix}\1)", attrib[attr])
        href = attrib.get(_HREF)
        if href and href.startswith("#") and not href.startswith(f"#{chart_id}"):
            attrib[_HREF] = f"#{prefix}{href[1:]}"
    for n, s in enumerate(series):
        group = groups.get(f"{chart_id}-series-{n}")
        if group is None:
            continue
        clip = _clip_of(groups.get(f"{chart_id}-line-{n}"))
        if clip is not None:
            group.set("clip-path", clip)
        marks = _marks(group)
        for mark, point in zip(marks, s.points, strict=False):
            mark.set("class", f"point triage-{point.colour or 'none'}")
            mark.set("data-series", s.key)
            mark.set("data-reading", point.reading_id)
            tip = ET.SubElement(mark, f"{{{SVG_NS}}}title")
            tip.text = point.title
    root.set("role", "img")
    root.set("aria-label", title)
    root.set("class", "trend")
    root.attrib.pop("width", None)
    root.attrib.pop("height", None)
    heading = ET.Element(f"{{{SVG_NS}}}title")
    heading.text = title
    root.insert(0, heading)
    # ElementTree takes prefixes from a process-wide map, and a library that registers the empty prefix for
    # itself (WeasyPrint's PDF metadata, on import) would make every chart <ns0:svg>: claimed again each time
    _svg_prefixes()
    return ET.tostring(root, encoding="unicode")


def warm() -> None:
    """matplotlib imported and a small chart drawn (its font found, text laid out), the figure then dropped: a
    drawing process's first chart costs what the next ones do."""
    from datetime import timedelta

    zone = ZoneInfo("UTC")
    start = datetime(2026, 1, 1, tzinfo=zone)
    points = [Point(start + timedelta(days=n), 120.0 + n, "green", "", f"warm-{n}") for n in range(3)]
    draw(
        "warm",
        "",
        "",
        [Series("s", "s", points)],
        [Band(None, 140.0, "green", "")],
        [],
        start,
        points[-1].at,
        zone,
        False,
    )
    forget()


def forget() -> None:
    """Drop the kept figures and ticks (what a newly started process has)."""
    with _lock:
        _PREPARED.clear()
        _TICKS.clear()
