"""Small-cell suppression against an attacker: every published count is a sum of a cube's detailed counts; the
attacker knows every shown count, that "<5" is 0..4 and "x" is 5 or more, and solves integer programs (a stronger
attacker than the linear programs the module itself runs) for each "<5" count's least and greatest value."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from homediag.evaluation.suppression import ALL, Cube, Result, suppress, table_keys


def _row(cube: Cube, key: tuple) -> np.ndarray:
    return np.array(
        [1.0 if all(k in (ALL, b) for k, b in zip(key, base, strict=True)) else 0.0 for base in cube.base()]
    )


def integer_range(result: Result, key: tuple) -> tuple[int, int]:
    cube = result.cube
    cons = []
    for k in cube.published:
        row = _row(cube, k)
        if k in result.shown:
            cons.append(LinearConstraint(row, result.shown[k], result.shown[k]))
        elif result.hidden[k] == "<5":
            cons.append(LinearConstraint(row, 0, 4))
        else:
            cons.append(LinearConstraint(row, 5, np.inf))
    target = _row(cube, key)
    out = []
    for sign in (1, -1):
        res = milp(sign * target, constraints=cons, integrality=np.ones(len(target)), bounds=Bounds(0, np.inf))
        assert res.status == 0
        out.append(round(sign * res.fun))
    return out[0], out[1]


def assert_protected(result: Result) -> None:
    for key, mark in result.hidden.items():
        if mark == "<5":
            low, high = integer_range(result, key)
            assert high > low, f"{key} can be worked out: it is {low}"


def grid(rows: dict[str, list[int]], cols: list[str]) -> Cube:
    values = (tuple(rows), tuple(cols))
    counts = {(r, c): n for r, ns in rows.items() for c, n in zip(cols, ns, strict=True)}
    return Cube("t", ("row", "col"), values, counts, table_keys(2, [0, 1], {}, values))


def test_a_small_count_is_shown_as_under_five_and_cannot_be_derived_from_the_totals() -> None:
    cube = grid({"a": [3, 10, 12], "b": [8, 9, 7], "c": [20, 6, 11]}, ["x", "y", "z"])
    result = suppress(cube)
    assert result.cell(("a", "x")) == "<5"
    # the attack on primary suppression alone: the row total minus the shown cells gives the cell back
    naive = Result(cube, {k: cube.value(k) for k in cube.published if k != ("a", "x")}, {("a", "x"): "<5"}, [])
    assert integer_range(naive, ("a", "x")) == (3, 3)
    assert_protected(result)
    assert all(result.cell(k) == "x" for k, mark in result.hidden.items() if mark != "<5")
    assert {s.kind for s in result.log} == {"primary", "complementary"}


def test_a_total_of_five_does_not_give_away_a_zero_beside_a_five() -> None:
    cube = grid({"a": [0, 5, 9], "b": [6, 7, 8]}, ["x", "y", "z"])
    result = suppress(cube)
    assert result.cell(("a", "x")) == "<5"
    assert_protected(result)


def test_several_small_counts_in_one_row_and_a_small_total() -> None:
    cube = grid({"a": [1, 2, 0], "b": [6, 7, 8], "c": [9, 4, 12]}, ["x", "y", "z"])
    result = suppress(cube)
    assert result.cell(("a", ALL)) == "<5"
    assert_protected(result)


def test_a_count_hidden_in_one_table_cannot_be_read_off_another() -> None:
    """Uploads by reason x vendor and by reason x adapter, two tables over the same uploads. Suppressed one table
    at a time, each table is safe on its own, but together they give a "<5" count away; suppressed together, not."""
    reasons, vendors, adapters = ("accepted", "rejected"), ("V1", "V2", "V3"), ("A1", "A2")
    counts = {
        ("accepted", "V1", "A1"): 2, ("accepted", "V2", "A2"): 40, ("accepted", "V3", "A1"): 6,
        ("rejected", "V1", "A1"): 1, ("rejected", "V2", "A2"): 12, ("rejected", "V3", "A2"): 12,
    }  # fmt: skip
    values = (reasons, vendors, adapters)
    by_vendor = table_keys(3, [0, 1], {}, values)
    by_adapter = [k for k in table_keys(3, [0, 2], {}, values) if k[2] != ALL]
    dims = ("reason", "vendor", "adapter")
    one, two = (suppress(Cube("uploads", dims, values, counts, keys)) for keys in (by_vendor, by_adapter))
    assert_protected(one)
    assert_protected(two)
    both = Cube("uploads", dims, values, counts, by_vendor + by_adapter)
    hidden = {**two.hidden, **one.hidden}
    separately = Result(both, {k: both.value(k) for k in both.published if k not in hidden}, hidden, [])
    assert integer_range(separately, ("rejected", ALL, "A1")) == (1, 1)  # the attack across tables works
    together = suppress(both)
    assert together.cell(("rejected", ALL, "A1")) == "<5"
    assert_protected(together)


def test_random_tables_are_always_protected() -> None:
    rng = np.random.default_rng(13)
    for _ in range(15):
        rows = {f"r{i}": [int(rng.choice([0, 1, 2, 3, 4, 6, 9, 15, 30])) for _ in range(4)] for i in range(4)}
        result = suppress(grid(rows, ["c0", "c1", "c2", "c3"]))
        assert_protected(result)
        for key in itertools.chain(result.shown):
            assert result.shown[key] >= 5


def test_random_cubes_with_two_tables_are_always_protected() -> None:
    """Two tables over one cube (as uploads by vendor and by adapter): the lines rule, the witness pool and the
    integer programs together never leave a "<5" count an independent attacker can work out."""
    rng = np.random.default_rng(1313)
    for _ in range(12):
        values = (("a", "b", "c"), ("v1", "v2", "v3"), ("p", "q"))
        counts = {k: int(rng.choice([0, 1, 2, 3, 5, 8, 13, 40])) for k in itertools.product(*values)}
        keys = table_keys(3, [0, 1], {}, values) + [k for k in table_keys(3, [0, 2], {}, values) if k[2] != ALL]
        result = suppress(Cube("u", ("r", "v", "a"), values, counts, keys))
        assert_protected(result)
        assert all(n >= 5 for n in result.shown.values())
