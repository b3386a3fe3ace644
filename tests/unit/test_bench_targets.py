"""``python3 run.py bench`` ends with every target of issue 11 named: as measured, or with the options that measure it
(``bench/targets.py``, ``bench/__main__.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import targets

ROOT = Path(__file__).resolve().parents[2]


def _served(lists: float, send: float, pairs: float, singles: float, mixed: float, pss: float) -> dict[str, Any]:
    """``served.<engine>`` as ``bench/served.py`` writes it: only its ``targets`` are read."""
    names = {
        "lists_one_gateway_over_ceiling_in_turns": lists,
        "lists_one_gateway_by_homediag_send_over_ceiling_in_turns": send,
        "lists_2_gateways_over_ceiling_in_turns": pairs,
        "single_envelopes_per_s": singles,
        "mixed_slowdown_in_rounds": mixed,
        "server_pss_max_mb": pss,
    }
    return {"targets": {k: {"measured": v, "target": "", "met": None} for k, v in names.items()}}


def _step(size: int, series: float, latest_ratio: float, ingest_growth: float, series_growth: float) -> dict[str, Any]:
    """One ``scale.<engine>.steps`` entry as ``bench/scale.py`` writes it (the fields read)."""
    return {
        "size": size,
        "search": {"bp-90-days": {"latency": {"p95_ms": series}}},
        "series_over_latest_p95": {"": latest_ratio, ", gc.freeze()": 1.0},
        "growth_vs_first": {"ingest": ingest_growth, "series_p95": series_growth},
    }


def _row(found: list[targets.Target], engine: str, starts: str) -> targets.Target:
    (row,) = [t for t in found if t.engine == engine and t.name.startswith(starts)]
    return row


def test_each_engine_is_judged_against_its_own_bound_and_singles_only_on_postgresql() -> None:
    payload = {
        "served": {
            "sqlite": _served(1.46, 2.11, 2.43, 304.0, 1.03, 252.4),
            "postgresql": _served(1.46, 2.2, 2.3, 280.0, 1.6, 299.9),
        }
    }
    found = targets.collect(payload, ("sqlite", "postgresql"))
    one_list = [t for t in found if t.name.startswith("lists of 100, one gateway, one list")]
    assert [(t.engine, t.bound, t.measured, t.met) for t in one_list] == [
        ("sqlite", ">= 2", 1.46, False),
        ("postgresql", ">= 1", 1.46, True),
    ]
    assert _row(found, "sqlite", "lists of 100, one gateway, sent").met is True
    singles = [t for t in found if t.name.startswith("single envelopes")]
    assert [(t.engine, t.measured, t.met) for t in singles] == [("postgresql", 280.0, False)]
    assert _row(found, "postgresql", "mixed load").met is False
    assert _row(found, "postgresql", "server memory").met is True
    assert (
        _row(found, "sqlite", "lists of 100, two").where
        == "served.sqlite.targets.lists_2_gateways_over_ceiling_in_turns"
    )


def test_targets_a_run_did_not_measure_say_which_options_measure_them() -> None:
    found = targets.collect({}, ("sqlite", "postgresql"))
    assert all(t.measured is None and t.met is None for t in found)
    assert _row(found, "sqlite", "lists of 100, two").where == "--served --served-gateways 2"
    assert _row(found, "postgresql", "series search p95").where == "--scale 1e6"
    assert _row(found, "postgresql", "growth to 10 M: ingest").where == "--engine postgresql --scale 1e5,1e7"
    text = targets.render(found)
    assert "run with `--scale 1e6`" in text
    assert text.endswith(f"0 of 0 measured targets met; {len(found)} not measured in this run.")


def test_the_series_targets_are_read_at_the_largest_store_of_a_million_or_more() -> None:
    steps = [_step(100_000, 3.0, 1.1, 1.0, 1.0), _step(1_000_000, 11.5, 1.7, 0.9, 1.3)]
    found = targets.collect({"scale": {"sqlite": {"steps": steps}}}, ("sqlite",))
    series = _row(found, "sqlite", "series search p95")
    assert (series.measured, series.met) == (11.5, False)
    assert series.where.startswith("scale.sqlite.steps[1].search.bp-90-days")
    over_latest = _row(found, "sqlite", "series p95 over latest")
    assert (over_latest.measured, over_latest.met) == (1.7, True)
    assert not [t for t in found if t.name.startswith("growth")]  # growth is stated for PostgreSQL only


def test_growth_is_judged_only_from_100_k_to_10_m_on_postgresql() -> None:
    grown = [
        _step(100_000, 6.1, 1.1, 1.0, 1.0),
        _step(1_000_000, 6.8, 1.2, 0.9, 1.1),
        _step(10_000_000, 9.2, 1.3, 0.68, 1.51),
    ]
    found = targets.collect({"scale": {"postgresql": {"steps": grown}}}, ("postgresql",))
    ingest, series = (
        _row(found, "postgresql", "growth to 10 M: ingest"),
        _row(found, "postgresql", "growth to 10 M: series"),
    )
    assert (ingest.measured, ingest.met, ingest.where) == (
        0.68,
        True,
        "scale.postgresql.steps[2].growth_vs_first.ingest",
    )
    assert (series.measured, series.met) == (1.51, False)
    assert _row(found, "postgresql", "series search p95").measured == 9.2  # the largest store
    from_a_million = [grown[1], grown[2]]  # ratios against 1 M say nothing of growth from 100 k
    found = targets.collect({"scale": {"postgresql": {"steps": from_a_million}}}, ("postgresql",))
    assert _row(found, "postgresql", "growth to 10 M: ingest").measured is None


def test_a_run_writes_its_targets_to_the_json_and_ends_with_their_table(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--engine", "sqlite", "--no-main", "--no-served", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    written = json.loads(out.read_text())
    names = {(t["name"], t["engine"]) for t in written["targets"]}
    assert ("single envelopes, 8 gateways (requests/s)", "postgresql") not in names  # the run was SQLite only
    assert ("series search p95 (ms), 90 days, 1 M readings stored", "sqlite") in names
    assert all(t["measured"] is None for t in written["targets"])
    printed = run.stdout
    assert "| lists of 100, one gateway, one list at a time, over the ceiling in turns | sqlite | >= 2 |" in printed
    assert "run with `--served`" in printed
