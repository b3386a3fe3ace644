"""Plain-text tables of the results."""

from __future__ import annotations

from collections.abc import Sequence

from .scenario import EngineResult


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *(line(r) for r in cells[1:])])


def render(result: EngineResult) -> str:
    ingest = table(
        (
            "POST /ingest",
            "envelopes",
            "Observations",
            "requests",
            "s",
            "envelopes/s",
            "Observations/s",
            "req p50 ms",
            "req p95 ms",
        ),
        [
            (
                r.mode,
                r.envelopes,
                r.observations,
                r.requests,
                f"{r.seconds:.2f}",
                f"{r.envelopes_per_s:.0f}",
                f"{r.observations_per_s:.0f}",
                f"{r.request.p50_ms:.1f}",
                f"{r.request.p95_ms:.1f}",
            )
            for r in result.ingest
        ],
    )
    search = table(
        ("GET /fhir/Observation", "searches", "entries", "p50 ms", "p95 ms", "max ms", "mean ms"),
        [
            (
                s.query.kind,
                s.latency.count,
                f"{s.mean_entries:.0f}",
                f"{s.latency.p50_ms:.1f}",
                f"{s.latency.p95_ms:.1f}",
                f"{s.latency.max_ms:.1f}",
                f"{s.latency.mean_ms:.1f}",
            )
            for s in result.search
        ],
    )
    head = (
        f"== {result.engine} ({result.version}): {result.observations} Observations stored, of which {result.seeded} "
        f"seeded directly in {result.seed_seconds:.1f} s (bypassing HTTP; searches always through HTTP)"
    )
    st = result.stall
    stall = (
        "bp-latest probes, one every 50 ms on the same event loop: "
        f"idle p50 {st.idle.p50_ms:.1f} ms, max {st.idle.max_ms:.1f} ms; "
        f"while one POST /ingest of {st.envelopes} envelopes runs ({st.ingest_ms:.0f} ms): "
        f"p50 {st.during.p50_ms:.1f} ms, max {st.during.max_ms:.1f} ms "
        f"({st.during.count} probes)"
    )
    ceilings = "; ".join(f"{c.variant} {c.per_s:.0f} Observations/s" for c in result.ceilings)
    ratios = "; ".join(
        f"{mode}: " + ", ".join(f"{r:.2f}x of {variant}" for variant, r in per.items())
        for mode, per in result.ratios().items()
    )
    ceiling = (
        f"same-run ceiling, one core in process (decode, build, rules, pseudonymise, insert): {ceilings}\n{ratios}"
    )
    return f"{head}\n\n{ingest}\n\n{ceiling}\n\n{search}\n\n{stall}\n"
