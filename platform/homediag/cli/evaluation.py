"""``homediag evaluation``: the evaluator's tabular export and the pilot's report, from the command line.

Both act as the evaluator whose API token is given (``--token`` or ``HOMEDIAG_TOKEN``): what it may
receive is decided by the access layer exactly as over HTTP, and audited.
"""

from __future__ import annotations

import gc
import os
import shutil
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from homediag.cli.common import fail, runtime

app = typer.Typer(help="Pilot evaluation: tabular export and report (as an evaluator).", no_args_is_help=True)

TokenOpt = Annotated[str | None, typer.Option("--token", envvar="HOMEDIAG_TOKEN", help="the evaluator's API token")]


def _evaluator(token: str | None):  # type: ignore[no-untyped-def]
    from homediag.users import authenticate

    if not token:
        raise fail("an evaluator's API token is needed: --token or HOMEDIAG_TOKEN")
    rt = runtime()
    with rt.sessions() as session:
        principal = authenticate(session, token)
    if principal is None:
        raise fail("the token is unknown, expired or revoked")
    return rt, principal


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{option} must be a date YYYY-MM-DD, not {text!r}") from None


@app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", help="a new directory for the tables, codebook and manifest")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    pilot: Annotated[str | None, typer.Option(help="only this pilot's patients")] = None,
    token: TokenOpt = None,
) -> None:
    """Export the readings, uploads and cohort events the evaluator may receive (resumable: run again)."""
    from homediag.access import AccessService
    from homediag.evaluation.export import export

    rt, principal = _evaluator(token)
    gc.freeze()  # the start-up heap (libraries): the collector need not walk it again for every page's objects
    result = export(AccessService(rt), principal, out, fmt=fmt, pilot=pilot, show_progress=True)
    typer.echo(f"{result.directory} ({result.manifest['patients']} patients, snapshot {result.manifest['snapshot']})")


@app.command("report")
def report_command(
    out: Annotated[Path, typer.Option("--out", help="the report's directory (report.html, plots/, export/)")],
    start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD")],
    pilot: Annotated[str | None, typer.Option(help="the pilot")] = None,
    token: TokenOpt = None,
) -> None:
    """Export, compute the metrics and write the report (HTML, PDF with WeasyPrint, MeasureReports)."""
    from homediag.access import AccessService
    from homediag.evaluation.export import export
    from homediag.evaluation.report import Parameters, render

    first, last = _day(start, "--from"), _day(end, "--to")
    if last < first:
        raise fail("--to is before --from")
    rt, principal = _evaluator(token)
    gc.freeze()  # as in export
    out.mkdir(parents=True, exist_ok=True)
    fresh = out / "export.new"
    export(AccessService(rt), principal, fresh, pilot=pilot, show_progress=True)
    if (out / "export").exists():
        shutil.rmtree(out / "export")
    os.replace(fresh, out / "export")
    made = render(out / "export", out, Parameters(pilot, first, last))
    typer.echo(f"{made['html']}" + (f" and {made['pdf']}" if made["pdf"] else " (no PDF: WeasyPrint not installed)"))
    typer.echo(f"stamp {made['stamp']['id']}; {made['suppressed']} counts suppressed (listed in the report)")
