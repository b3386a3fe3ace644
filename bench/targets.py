"""Issue 11's targets as one table: each as this run measured it, its bound, whether it is met, and where in the
run's JSON the figure is; a target the run did not measure is listed with the options that measure it.

The figures come from the parts of the run that measure them: the served targets from ``--served``
(``served.<engine>.targets``, computed there beside the same-run ceiling), the series and growth targets from
``--scale`` (``scale.<engine>.steps``). So ``python3 run.py bench`` always ends with every target named, and a
reader sees at once which ones a run left out rather than finding them missing from the JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

BOTH = ("sqlite", "postgresql")
SERIES_AT = 1_000_000
"""The series targets are stated for a store of this many readings (or more)."""
GROWTH_FROM, GROWTH_TO = 100_000, 10_000_000
"""The growth targets compare a store of ``GROWTH_TO`` readings with one of ``GROWTH_FROM`` (PostgreSQL)."""


@dataclass(frozen=True)
class Target:
    """One target for one engine: ``measured`` None (and ``met`` None) when this run did not measure it; ``where``
    is then the options that measure it, else the JSON path of the figure."""

    name: str
    engine: str
    bound: str
    measured: float | None
    met: bool | None
    where: str


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, b: v >= b,
    "<=": lambda v, b: v <= b,
    "<": lambda v, b: v < b,
}

# (name, the key of ``served.<engine>.targets``, the engines the issue states it for)
_SERVED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "lists of 100, one gateway, one list at a time, over the ceiling in turns",
        "lists_one_gateway_over_ceiling_in_turns",
        BOTH,
    ),
    (
        "lists of 100, one gateway, sent by `homediag send`, over the ceiling in turns",
        "lists_one_gateway_by_homediag_send_over_ceiling_in_turns",
        BOTH,
    ),
    ("lists of 100, two gateways at once, over the ceiling in turns", "lists_2_gateways_over_ceiling_in_turns", BOTH),
    ("single envelopes, 8 gateways (requests/s)", "single_envelopes_per_s", ("postgresql",)),
    ("mixed load: lists with 4 clients searching, slow-down (in rounds)", "mixed_slowdown_in_rounds", BOTH),
    ("server memory, PSS max (MB)", "server_pss_max_mb", BOTH),
)
_LISTS_BOUND = {"sqlite": ">= 2", "postgresql": ">= 1"}
_SERVED_BOUND = {
    "single_envelopes_per_s": ">= 1000",
    "mixed_slowdown_in_rounds": "<= 1.5",
    "server_pss_max_mb": "< 300",
}
_SERVED_OPTIONS = {
    "lists_2_gateways_over_ceiling_in_turns": "--served --served-gateways 2",
}


def served_bound(key: str, engine: str) -> str:
    """The bound of the served target ``key`` (a key of ``served.<engine>.targets``) on ``engine``: the lists' is 2×
    the ceiling on SQLite and 1× on PostgreSQL, whatever the number of gateways."""
    return _SERVED_BOUND.get(key) or _LISTS_BOUND[engine]


def met(value: float, bound: str) -> bool:
    """Whether ``value`` keeps within ``bound`` (e.g. ``">= 2"``)."""
    op, limit = bound.split()
    return _OPS[op](value, float(limit))


def _judged(name: str, engine: str, bound: str, value: float | None, where: str) -> Target:
    if value is None:
        return Target(name, engine, bound, None, None, where)
    return Target(name, engine, bound, round(value, 3), met(value, bound), where)


def _served(payload: dict[str, Any], engines: tuple[str, ...]) -> list[Target]:
    found = []
    for name, key, stated in _SERVED:
        for engine in engines:
            if engine not in stated:
                continue
            measured = payload.get("served", {}).get(engine, {}).get("targets", {}).get(key)
            bound = served_bound(key, engine)
            if measured is None:
                found.append(_judged(name, engine, bound, None, _SERVED_OPTIONS.get(key, "--served")))
            else:
                found.append(_judged(name, engine, bound, measured["measured"], f"served.{engine}.targets.{key}"))
    return found


def _step(steps: list[dict[str, Any]], at_least: int) -> tuple[int, dict[str, Any]] | None:
    """The largest step of at least ``at_least`` readings, with its index."""
    big = [(i, s) for i, s in enumerate(steps) if s["size"] >= at_least]
    return max(big, key=lambda pair: pair[1]["size"]) if big else None


def _scale(payload: dict[str, Any], engines: tuple[str, ...]) -> list[Target]:
    found = []
    for engine in engines:
        steps = payload.get("scale", {}).get(engine, {}).get("steps", [])
        big = _step(steps, SERIES_AT)
        series, latest = "series search p95 (ms), 90 days, 1 M readings stored", "series p95 over latest-value p95"
        if big is None:
            found.append(_judged(series, engine, "<= 10", None, "--scale 1e6"))
            found.append(_judged(latest, engine, "<= 2", None, "--scale 1e6"))
        else:
            i, step = big
            p95 = step["search"]["bp-90-days"]["latency"]["p95_ms"]
            where = f"scale.{engine}.steps[{i}]"
            found.append(_judged(series, engine, "<= 10", p95, f"{where}.search.bp-90-days (size {step['size']:,})"))
            ratio = step["series_over_latest_p95"][""]
            found.append(_judged(latest, engine, "<= 2", ratio, f"{where}.series_over_latest_p95"))
    if "postgresql" in engines:
        steps = payload.get("scale", {}).get("postgresql", {}).get("steps", [])
        grown = _step(steps, GROWTH_TO)
        options = "--engine postgresql --scale 1e5,1e7"  # GROWTH_FROM and GROWTH_TO
        ingest, series = (
            "growth to 10 M: ingest over its rate at 100 k",
            "growth to 10 M: series p95 over its p95 at 100 k",
        )
        if grown is None or not steps or steps[0]["size"] != GROWTH_FROM:
            found.append(_judged(ingest, "postgresql", ">= 0.667", None, options))
            found.append(_judged(series, "postgresql", "<= 1.5", None, options))
        else:
            i, step = grown
            where = f"scale.postgresql.steps[{i}].growth_vs_first"
            found.append(
                _judged(ingest, "postgresql", ">= 0.667", step["growth_vs_first"]["ingest"], f"{where}.ingest")
            )
            found.append(
                _judged(series, "postgresql", "<= 1.5", step["growth_vs_first"]["series_p95"], f"{where}.series_p95")
            )
    return found


def collect(payload: dict[str, Any], engines: tuple[str, ...]) -> list[Target]:
    """Every target of issue 11 for ``engines``, from a run's JSON (``payload``: its ``served`` and ``scale``)."""
    return _served(payload, engines) + _scale(payload, engines)


def as_json(targets: list[Target]) -> list[dict[str, Any]]:
    return [asdict(t) for t in targets]


def render(targets: list[Target]) -> str:
    """A Markdown table (it can go into docs/performance.md as it is), then how many were met of those measured."""
    lines = ["| target | engine | bound | measured | met | where |", "|---|---|---|---|---|---|"]
    for t in targets:
        measured = "not measured" if t.measured is None else f"{t.measured:g}"
        met = "" if t.met is None else ("yes" if t.met else "**no**")
        where = f"run with `{t.where}`" if t.measured is None else f"`{t.where}`"
        lines.append(f"| {t.name} | {t.engine} | {t.bound} | {measured} | {met} | {where} |")
    judged = [t for t in targets if t.met is not None]
    lines.append("")
    lines.append(
        f"{sum(1 for t in judged if t.met)} of {len(judged)} measured targets met;"
        f" {len(targets) - len(judged)} not measured in this run."
    )
    return "\n".join(lines)
