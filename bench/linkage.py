"""How well two pseudonym domains can be joined by what they both see (issue 9, docs/security.md).

An in-process experiment, not a speed benchmark: synthetic patients with readings at home-monitoring
times (twice a day, jittered, some days missed) and values, seen through two evaluators' views
(``View.shift``, per patient and per domain). An attacker holding both domains' data tries to pair each
patient of one domain with one of the other by

- exact timestamps (the attack the issue found: every reading at the same instant in both domains);
- the sequence of intervals between a patient's readings (kept by the shift, by design);
- the sequence of values (the shift does not touch values);

with and without coarsening to the day. Run: ``python -m bench.linkage [--patients N] [--days D]``.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from homediag.access.view import View
from homediag.domains import domain_for
from homediag.keys import KeyRing
from homediag.users import Principal


def _readings(rng: random.Random, days: int) -> list[tuple[datetime, int]]:
    start = datetime(2026, 9, 1, tzinfo=UTC)
    out = []
    for day in range(days):
        for hour in (7, 19):
            if rng.random() < 0.15:  # a missed measurement
                continue
            when = start + timedelta(days=day, hours=hour, minutes=rng.randint(-45, 45), seconds=rng.randint(0, 59))
            out.append((when, rng.randint(105, 170)))
    return out


def _view(keys: KeyRing, org: str, coarsen: str | None) -> View:
    return View(
        Principal(f"eval-{org}", "e", "evaluator", org), "HRESCH", domain_for(keys, f"evaluator:{org}"), coarsen
    )


def _linked(one: dict[str, tuple], two: dict[str, tuple]) -> int:
    """Patients of domain one whose feature matches exactly one patient of domain two, and that is the same one."""
    counts = Counter(two.values())
    by_feature = {v: k for k, v in two.items()}
    return sum(1 for pid, feature in one.items() if counts[feature] == 1 and by_feature[feature] == pid)


def run(patients: int, days: int, seed: int = 9) -> list[tuple[str, str, int]]:
    rng = random.Random(seed)
    keys = KeyRing.generate()
    data = {f"patient-{i}": _readings(rng, days) for i in range(patients)}
    rows = []
    for coarsen in (None, "day"):
        a, b = _view(keys, "FIERS-A", coarsen), _view(keys, "FIERS-B", coarsen)

        def seen(view: View) -> dict[str, list[tuple[datetime, int]]]:
            return {pid: [(view.shift(pid, t), v) for t, v in rs] for pid, rs in data.items()}

        sa, sb = seen(a), seen(b)
        times_a = {t for rs in sa.values() for t, _ in rs}
        shared = sum(1 for rs in sb.values() for t, _ in rs if t in times_a)
        label = coarsen or "none"
        rows.append((label, "readings at an instant also seen by the other domain (coincidence)", shared))
        rows.append(
            (label, "patients linked by exact timestamps", _linked(
                {p: tuple(t for t, _ in r) for p, r in sa.items()}, {p: tuple(t for t, _ in r) for p, r in sb.items()}
            ))
        )  # fmt: skip

        def intervals(rs: list[tuple[datetime, int]]) -> tuple[float, ...]:
            return tuple((y[0] - x[0]).total_seconds() for x, y in zip(rs, rs[1:], strict=False))

        rows.append(
            (label, "patients linked by interval sequence", _linked(
                {p: intervals(r) for p, r in sa.items()}, {p: intervals(r) for p, r in sb.items()}
            ))
        )  # fmt: skip
        rows.append(
            (label, "patients linked by value sequence", _linked(
                {p: tuple(v for _, v in r) for p, r in sa.items()}, {p: tuple(v for _, v in r) for p, r in sb.items()}
            ))
        )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    total = args.patients
    print(f"{args.patients} synthetic patients, {args.days} days of twice-daily readings, two evaluator domains")
    for coarsen, what, n in run(args.patients, args.days):
        print(f"coarsen={coarsen:5} {what}: {n}" + ("" if "readings" in what else f" of {total}"))


if __name__ == "__main__":
    main()
