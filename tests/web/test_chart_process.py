"""Charts drawn in drawing processes (``web.chart_process``): the same SVG the server process draws, a chart still
drawn when a drawing process dies, and no drawing process outliving the server process that started it, however
that process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from test_charts_kept_figure import END, START, ZONE, _pressure, _pulse

from homediag.web import chart_draw, chart_process, charts


def _arguments(chart: tuple[object, ...], decimal_comma: bool = False) -> tuple[object, ...]:
    return (*chart, START, END, ZONE, decimal_comma)


def test_a_chart_drawn_in_a_drawing_process_is_the_chart_the_server_draws() -> None:
    for chart, comma in ((_pressure(150), False), (_pulse(40), True), (_pressure(3), True)):
        arguments = _arguments(chart, comma)
        chart_draw._PREPARED.clear()
        assert chart_process.POOL.submit(arguments).result(60) == chart_draw.draw(*arguments)  # type: ignore[arg-type]


def test_a_chart_is_still_drawn_when_its_drawing_process_has_died() -> None:
    chart_process.POOL.submit(_arguments(_pulse(3))).result(60)  # started
    for pid in chart_process.POOL.pids():
        os.kill(pid, signal.SIGKILL)
    moved = START + timedelta(hours=1)  # a chart not drawn before
    arguments = (*_pulse(20), moved, END, ZONE, False)
    svg = charts.trend_svg(*arguments)  # type: ignore[arg-type]
    assert svg.count('class="point') == 20 and svg == chart_draw.draw(*arguments)  # type: ignore[arg-type]
    # the dead processes were replaced: the next chart is drawn by a drawing process again
    assert chart_process.POOL.submit(_arguments(_pulse(5))).result(60).count('class="point') == 5


_SERVER = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, timedelta, timezone
    from homediag.web import chart_process
    from homediag.web.charts import Point, Series
    start = datetime(2026, 9, 3, tzinfo=timezone.utc)
    points = [Point(start + timedelta(days=n), 60.0 + n, "green", "", str(n)) for n in range(3)]
    arguments = ("c", "Pulse", "/min", [Series("pulse", "Pulse", points)], [], [], start, start + timedelta(days=14))
    chart_process.POOL.submit((*arguments, __import__("zoneinfo").ZoneInfo("UTC"), False)).result(60)
    print(" ".join(map(str, chart_process.POOL.pids())), flush=True)
    if sys.argv[1] == "killed":
        time.sleep(60)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (ended, not yet reaped) is not running
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("how", ["exits", "killed"])
def test_no_drawing_process_outlives_the_server_process(how: str) -> None:
    server = subprocess.Popen([sys.executable, "-c", _SERVER, how], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    pids = [int(p) for p in server.stdout.readline().split()]
    assert len(pids) == chart_process.PROCESSES and all(_alive(p) for p in pids)
    if how == "killed":
        server.kill()  # no atexit: the drawing processes find their input closed
    server.wait(60)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def test_with_no_drawing_processes_configured_the_server_draws_its_charts_and_starts_none(runtime, monkeypatch) -> None:
    from homediag.api.app import create_app

    pool = chart_process.Pool()
    monkeypatch.setattr(chart_process, "POOL", pool)
    runtime.settings.chart_processes = 0  # HOMEDIAG_CHART_PROCESSES=0
    create_app(runtime)
    charts.warm()  # as a worklist view does
    arguments = (*_pulse(7), START + timedelta(hours=2), END, ZONE, False)  # a chart not drawn before
    svg = charts.trend_svg(*arguments)  # type: ignore[arg-type]
    assert svg.count('class="point') == 7 and svg == chart_draw.draw(*arguments)  # type: ignore[arg-type]
    assert pool.pids() == []
