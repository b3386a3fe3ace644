"""Small-cell suppression with complementary suppression, checked by an attacker's integer programs.

A count cube holds the detailed counts (one per combination of its dimensions' values). Every published
number of a cube is a lattice key: a value per dimension or ``ALL`` where the dimension is summed (a
table's cells, its row and column totals, the grand total). A published count under the threshold (5)
is shown as "<5" (primary suppression). An attacker knows every shown count, that a "<5" cell lies in
0..4, that a cell suppressed only to protect another ("x") is 5 or more, and that counts are whole
numbers; for each "<5" cell it solves two integer programs (the least and the greatest value the
published numbers allow; SciPy's ``milp``, HiGHS). While a "<5" cell can take only one whole value, the
cheapest one or two further counts beside it (same row or column of a table, or the total it adds up to)
that leave it undetermined are suppressed too ("x"), and the check is repeated; failing that, the whole
table is withheld. Each suppression is recorded with its reason for the report.

Tables of different cubes share no count but, at most, a total shown unsuppressed in both; a number that
is a combination of one cube's counts (a share, a mean) is shown only where no count it rests on is
suppressed, so it adds nothing an attacker could solve with.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix

ALL = "*"
THRESHOLD = 5
# A zero is a count under 5 too, and is shown as "<5" (the brief's rule). Statistics Denmark and the Danish Health
# Data Authority suppress only 1 to 4; set this False for that rule (the attacker then knows a "<5" is 1 to 4).
SUPPRESS_ZEROS = True
MILP_SECONDS = 5.0
Key = tuple[Hashable, ...]


@dataclass
class Cube:
    name: str
    dims: tuple[str, ...]
    values: tuple[tuple[Hashable, ...], ...]  # the values of each dimension, in order
    counts: dict[Key, int]  # detailed counts (missing: 0)
    published: list[Key]  # lattice keys shown in the report's tables
    possible: Callable[[Key], bool] = field(default=lambda key: True)  # structural zeros are public knowledge

    def base(self) -> list[Key]:
        return [k for k in itertools.product(*self.values) if self.possible(k)]

    def value(self, key: Key) -> int:
        return sum(n for k, n in self.counts.items() if _covers(key, k))


@dataclass(frozen=True)
class Suppressed:
    cube: str
    key: Key
    kind: str  # primary | complementary
    why: str


@dataclass
class Result:
    cube: Cube
    shown: dict[Key, int]
    hidden: dict[Key, str]  # key -> "<5" (primary) or "x" (complementary)
    log: list[Suppressed]

    def cell(self, key: Key) -> str:
        return self.hidden.get(key) or str(self.shown[key])

    def number(self, key: Key) -> int | None:
        return None if key in self.hidden else self.shown[key]


def _covers(key: Key, base: Key) -> bool:
    return all(k == ALL or k == b for k, b in zip(key, base, strict=True))


def _label(cube: Cube, key: Key) -> str:
    parts = [f"{d}={v}" for d, v in zip(cube.dims, key, strict=True) if v != ALL]
    return f"{cube.name}[{', '.join(parts) or 'total'}]"


class _Attacker:
    """The published numbers as linear constraints over the cube's detailed counts.

    Whether a "<5" count is exposed (only one whole value fits what is published) is decided exactly: it is
    not exposed as soon as two whole-number tables fit the published numbers and differ in it. One of them is
    always the true table; the other is either one found earlier for another question that still fits (kept in
    a pool and checked against the current constraints: no solve), or the least or greatest value of the count
    found by an integer program (``milp``; the greatest only when the least is the true value). A count is
    exposed only when both programs return the true value, or when one is not solved in time."""

    POOL = 256

    def __init__(self, cube: Cube) -> None:
        self.cube = cube
        base = cube.base()
        self.keys = list(cube.published)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.rows = {key: np.array([1.0 if _covers(key, b) else 0.0 for b in base]) for key in self.keys}
        self.n = len(base)
        self.matrix = csr_matrix(np.array([self.rows[k] for k in self.keys]))
        self.pool: list[np.ndarray] = []  # whole-number tables found by the programs
        self.lines = _lines(self.keys, self.rows)
        self.relaxation = _Relaxation(self.matrix)
        self.solves = 0
        self._cache: dict[tuple[Key, frozenset[tuple[Key, str]]], bool] = {}

    def _limits(self, hidden: dict[Key, str], values: dict[Key, int]) -> tuple[np.ndarray, np.ndarray]:
        lower, upper = [], []
        for k in self.keys:
            if k not in hidden:
                lower.append(values[k])
                upper.append(values[k])
            elif hidden[k] == "<5":
                lower.append(0 if SUPPRESS_ZEROS else 1)
                upper.append(THRESHOLD - 1)
            else:
                lower.append(THRESHOLD)
                upper.append(np.inf)
        return np.array(lower, dtype=float), np.array(upper, dtype=float)

    def exposed(self, target: Key, hidden: dict[Key, str], values: dict[Key, int]) -> bool:
        """Whether ``target`` (a "<5" count) can take only its true value given what is published."""
        memo = (target, frozenset(hidden.items()))
        if memo not in self._cache:
            self._cache[memo] = self._exposed(target, hidden, values)
        return self._cache[memo]

    def _exposed(self, target: Key, hidden: dict[Key, str], values: dict[Key, int]) -> bool:
        # The classic rule first: a count alone hidden in a line (a total and the counts that add up to it,
        # every other one shown) is that total minus the others: exposed, no program needed.
        for line in self.lines.get(target, ()):
            if all(k == target or k not in hidden for k in line):
                return True
        true = values[target]
        lower, upper = self._limits(hidden, values)
        if self._pinned(target, lower, upper):
            return True
        row = self.rows[target]
        for x in self.pool:  # a table found before that fits now and differs in the target: not exposed
            if abs(row @ x - true) > 0.5:
                sums = self.matrix @ x
                if np.all(sums >= lower - 1e-6) and np.all(sums <= upper + 1e-6):
                    return False
        constraint = LinearConstraint(self.matrix, lower, upper)
        for sign in (1.0, -1.0):
            x = self._optimum(sign * row, constraint)
            if x is None:  # not solved in time: take it as worked out, and suppress more rather than less
                return True
            self.pool = [x, *self.pool[: self.POOL - 1]]
            if abs(row @ x - true) > 0.5:
                return False
        return True

    def _pinned(self, target: Key, lower: np.ndarray, upper: np.ndarray) -> bool:
        """The lines rule with bounds: in each line of ``target`` (a total and its parts), the target lies between
        what the line's other numbers leave at least and at most (``lower``/``upper``: what is published of each
        key, in ``self.keys`` order); one whole value left is exposed, no program needed (e.g. a "<5" beside
        other "<5" counts in a row whose shown counts leave nothing for them)."""
        t = self.index[target]
        low, high = lower[t], upper[t]
        for line in self.lines.get(target, ()):
            total, parts = self.index[line[0]], [self.index[k] for k in line[1:]]
            if t == total:  # the total: between the sums of its parts' bounds
                low, high = max(low, sum(lower[p] for p in parts)), min(high, sum(upper[p] for p in parts))
            else:
                others = [p for p in parts if p != t]
                low = max(low, lower[total] - sum(upper[p] for p in others))
                high = min(high, upper[total] - sum(lower[p] for p in others))
        return bool(np.floor(high) <= np.ceil(low))

    def _optimum(self, objective: np.ndarray, constraint: LinearConstraint) -> np.ndarray | None:
        """A whole-number table minimising ``objective`` under what is published: the linear relaxation's optimum
        when it is whole already (then it is the integer program's optimum too: tables with margins mostly have
        whole-number vertices), else the integer program's. None when not solved in time."""
        self.solves += 1
        bounds = Bounds(0, np.inf)
        relaxed = self.relaxation.solve(objective, constraint.lb, constraint.ub)
        if relaxed is not None and np.allclose(relaxed, np.round(relaxed), atol=1e-7):
            return np.round(relaxed)
        res = milp(objective, constraints=constraint, integrality=np.ones(self.n), bounds=bounds,
                   options={"time_limit": MILP_SECONDS})  # fmt: skip
        return np.round(res.x) if res.status == 0 else None


def _quiet_highs() -> highspy.Highs:
    """A HiGHS model with its log off. Its constructor writes a banner to the process's standard output (in C,
    once per process, whatever the options: HiGHS issue 2749), which would land in a command's output: file
    descriptor 1 points at the null device meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highs = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("presolve", "off")  # presolve would drop the basis the next question starts from
    return highs


class _Relaxation:
    """The attacker's linear relaxation, kept in one HiGHS model (highspy): a question changes only the objective
    and the published numbers' bounds, and the simplex starts from the last question's basis: a few pivots instead
    of a solve from scratch (a cube asks thousands of questions). The optimum's value is the same from any start;
    a different optimal vertex can only change which whole tables are kept in the pool, never a decision."""

    def __init__(self, matrix: csr_matrix) -> None:
        self.rows, self.cols = matrix.shape
        self.highs = _quiet_highs()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.cols, self.rows
        lp.col_cost_ = np.zeros(self.cols)
        lp.col_lower_ = np.zeros(self.cols)
        lp.col_upper_ = np.full(self.cols, highspy.kHighsInf)
        lp.row_lower_ = np.zeros(self.rows)
        lp.row_upper_ = np.zeros(self.rows)
        csc = matrix.tocsc()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = csc.indptr, csc.indices, csc.data
        self.highs.passModel(lp)
        self.all_rows, self.all_cols = np.arange(self.rows, dtype=np.int32), np.arange(self.cols, dtype=np.int32)

    def solve(self, objective: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
        """The relaxation's optimal table minimising ``objective`` with the published numbers in [lower, upper];
        None when it is not solved to optimality."""
        upper = np.where(np.isinf(upper), highspy.kHighsInf, upper)
        self.highs.changeColsCost(self.cols, self.all_cols, np.asarray(objective, dtype=float))
        self.highs.changeRowsBounds(self.rows, self.all_rows, np.asarray(lower, dtype=float), upper)
        self.highs.run()
        if self.highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        return np.array(self.highs.getSolution().col_value)


def _lines(keys: list[Key], rows: dict[Key, np.ndarray]) -> dict[Key, list[tuple[Key, ...]]]:
    """Each published count's lines: a published total with the published counts one dimension finer that add
    up to it exactly (checked on the cube's detailed counts), the total included. Key -> the lines it is in."""
    published = set(keys)
    out: dict[Key, list[tuple[Key, ...]]] = {}
    for total in keys:
        for i, v in enumerate(total):
            if v != ALL:
                continue
            parts = [k for k in keys if _same_except(k, total, i)]
            if not parts or not np.array_equal(sum(rows[k] for k in parts), rows[total]):
                continue
            line = (total, *parts)
            for k in line:
                if k in published:
                    out.setdefault(k, []).append(line)
    return out


def _neighbours(key: Key) -> list[Key]:
    """The counts beside a cell in its tables: its siblings along each dimension and the totals it adds to."""
    out = []
    for i, v in enumerate(key):
        if v != ALL:
            out.append((*key[:i], ALL, *key[i + 1 :]))
    return out


def suppress(cube: Cube, threshold: int = THRESHOLD) -> Result:
    values = {k: cube.value(k) for k in cube.published}
    hidden: dict[Key, str] = {}
    log: list[Suppressed] = []
    for k in cube.published:
        if values[k] < threshold and (SUPPRESS_ZEROS or values[k] > 0):
            hidden[k] = "<5"
            log.append(Suppressed(cube.name, k, "primary", f"{_label(cube, k)}: a count under {threshold}"))
    if not cube.base():  # nothing counted at all: every published count is a zero
        return Result(cube, {}, dict(hidden), log)
    attacker = _Attacker(cube)
    published = set(cube.published)
    for _ in range(len(cube.published)):  # passes over the "<5" counts until one changes nothing
        changed = False
        for weak in [k for k, mark in hidden.items() if mark == "<5"]:
            if not attacker.exposed(weak, hidden, values):
                continue
            for pick in _complement(attacker, weak, published, hidden, values):
                changed = True
                hidden[pick] = "x"
                log.append(
                    Suppressed(
                        cube.name,
                        pick,
                        "complementary",
                        f"{_label(cube, pick)}: otherwise {_label(cube, weak)} could be worked out from the shown "
                        "counts",
                    )
                )
        if not changed:
            break
    exposed = [k for k, mark in hidden.items() if mark == "<5" and attacker.exposed(k, hidden, values)]
    if exposed:  # no cheap complement found: withhold the whole cube rather than give a count away
        for k in cube.published:
            if k not in hidden:
                hidden[k] = "x"
                log.append(Suppressed(cube.name, k, "complementary", f"{_label(cube, k)}: the table could not "
                                      f"otherwise protect {_label(cube, exposed[0])}"))  # fmt: skip
    shown = {k: v for k, v in values.items() if k not in hidden}
    return Result(cube, shown, hidden, log)


def _complement(
    attacker: _Attacker, weak: Key, published: set[Key], hidden: dict[Key, str], values: dict[Key, int]
) -> list[Key]:
    """The cheapest one or two further counts to suppress that leave ``weak`` undetermined (a rectangle of
    suppressed cells), else the smallest count beside it."""
    first = _candidates(weak, published, hidden, values)[:8]

    def protects(extra: list[Key]) -> bool:
        trial = {**hidden, **{k: "x" for k in extra}}
        return not attacker.exposed(weak, trial, values)

    for k in first:
        if protects([k]):
            return [k]
    pairs = []
    for k in first:
        for k2 in _candidates(k, published, {**hidden, k: "x"}, values)[:8]:
            if k2 != k:
                pairs.append((values[k] + values[k2], str(k), str(k2), k, k2))
    for *_, k, k2 in sorted(pairs):
        if protects([k, k2]):
            return [k, k2]
    return first[:1]


def _candidates(weak: Key, published: set[Key], hidden: dict[Key, str], values: dict[Key, int]) -> list[Key]:
    """Shown counts in the same rows and columns as ``weak`` (siblings first, then the totals), smallest first."""
    siblings: list[Key] = []
    for total in _neighbours(weak):
        i = next(j for j, (a, b) in enumerate(zip(total, weak, strict=True)) if a != b)
        siblings += [k for k in published if k != weak and _same_except(k, weak, i)]
    totals = [t for t in _neighbours(weak) if t in published]

    # the rows and columns holding another suppressed count (``_same_except(h, k, i)`` for some such h, as keys)
    lines = {(i, h[:i] + h[i + 1 :]) for h in hidden if h != weak for i in range(len(h)) if h[i] != ALL}

    def paired(k: Key) -> bool:  # another suppressed count in one of its own rows or columns: a rectangle forms
        return any((i, k[:i] + k[i + 1 :]) in lines for i in range(len(k)))

    seen: list[Key] = []
    for group in (siblings, totals):
        for k in sorted(group, key=lambda k: (not paired(k), values[k], str(k))):
            if k not in hidden and k not in seen:
                seen.append(k)
    return seen


def _same_except(k: Key, other: Key, i: int) -> bool:
    return k[i] != ALL and all(a == b for j, (a, b) in enumerate(zip(k, other, strict=True)) if j != i)


def table_keys(
    n_dims: int, axes: Sequence[int], fixed: dict[int, Hashable], values: Sequence[Sequence[Hashable]]
) -> list[Key]:
    """The lattice keys of a table over ``axes`` (with its totals), other dimensions ``fixed`` or summed."""
    keys: list[Key] = []
    choices = [list(values[a]) + [ALL] for a in axes]
    for combo in itertools.product(*choices):
        key: list[Hashable] = [fixed.get(i, ALL) for i in range(n_dims)]
        for a, v in zip(axes, combo, strict=True):
            key[a] = v
        keys.append(tuple(key))
    return keys
