"""Charts are drawn on a figure kept between charts (``chart_draw._prepared``): a chart must show only its own data,
whatever was drawn on that figure before, and its points stay clipped to the plot area."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from homediag.web import chart_draw, charts

ZONE = ZoneInfo("Europe/Copenhagen")
START = datetime(2026, 9, 3, 0, 0, tzinfo=ZONE)
END = START + timedelta(days=90)


def _points(n: int, low: float, colour: str | None, name: str) -> list[charts.Point]:
    return [
        charts.Point(START + timedelta(hours=12 * i + 7), low + (i * 7) % 40, colour, f"{name} {i}", f"{name}{i}")
        for i in range(n)
    ]


def _pulse(n: int) -> tuple[object, ...]:
    bands = [
        charts.Band(None, 50, "yellow", "low"),
        charts.Band(50, 100, "green", "ok"),
        charts.Band(100, None, "red", "high"),
    ]
    return ("chart1", "Pulse", "/min", [charts.Series("pulse-rate", "Pulse", _points(n, 55, "green", "p"))], bands, [])


def _pressure(n: int) -> tuple[object, ...]:
    series = [
        charts.Series("systolic", "Systolic", _points(n, 120, "red", "s")),
        charts.Series("diastolic", "Diastolic", _points(n, 70, None, "d")),
    ]
    return ("chart0", "Blood pressure", "mmHg", series, [], [charts.Line(140, "yellow", "systolic")])


def _draw(chart: tuple[object, ...], decimal_comma: bool = False) -> str:
    return chart_draw.draw(*chart, START, END, ZONE, decimal_comma)  # type: ignore[arg-type]


def test_a_chart_drawn_after_others_is_the_chart_a_new_figure_draws() -> None:
    chart_draw._PREPARED.clear()
    fresh_pulse = _draw(_pulse(12))
    chart_draw._PREPARED.clear()
    fresh_pressure = _draw(_pressure(150))
    # the same kept figures, after charts with other data, a legend, other limits, the other number format
    _draw(_pulse(170))
    _draw(_pressure(150), decimal_comma=True)
    assert _draw(_pulse(12)) == fresh_pulse
    _draw(_pressure(3))
    assert _draw(_pressure(150)) == fresh_pressure
    assert fresh_pulse.count('class="point') == 12 and "Systolic" not in fresh_pulse
    assert fresh_pressure.count('class="point') == 300


def test_every_point_is_clipped_to_the_plot_area_as_its_line_is() -> None:
    svg = _draw(_pressure(40))
    line_clips = set(re.findall(r'<g id="chart0-line-\d">\s*<path[^>]*clip-path="(url\(#[^)]+\))"', svg))
    groups = re.findall(r'<g id="chart0-series-\d"([^>]*)>', svg)
    assert len(line_clips) == 1 and len(groups) == 2
    (clip,) = line_clips
    assert all(f'clip-path="{clip}"' in attributes for attributes in groups)
    assert svg.count('class="point') == 80
