"""``homediag serve`` and ``homediag demo``: serve the API; a fresh demo pilot, then serve it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from homediag.cli.common import fail, runtime

app = typer.Typer()  # its commands join the root command (``add_typer`` without a name)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (default HOMEDIAG_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default HOMEDIAG_PORT or 8000)")] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="worker processes (several for PostgreSQL; docs/performance.md); default 1"),
    ] = 1,
) -> None:
    """Serve the API (settings from HOMEDIAG_* environment variables)."""
    import subprocess
    import sys

    from homediag.errors import Unavailable
    from homediag.server import serve as run
    from homediag.server import serve_workers
    from homediag.settings import get_settings
    from homediag.store.database import check_reachable

    settings = get_settings()
    rt = runtime()
    try:
        check_reachable(rt.engine)  # fail at start-up, clearly, not with a 500 on every request
    except Unavailable as exc:
        raise fail(f"cannot serve: {exc}; start the database or fix HOMEDIAG_DATABASE_URL") from None
    if workers == 1:
        from homediag.api.app import create_app

        run(create_app(rt), host or settings.host, port or settings.port)  # a bad setting fails here, clearly
        return
    rt.close()
    # The supervisor of the workers never builds the app itself: it would hold the whole application in memory
    # beside the workers (about 150 MB) for nothing. A child builds it once, so a bad setting or key file still
    # fails here, clearly, and makes PostgreSQL's months ahead once, before the workers start.
    check = subprocess.run(
        [sys.executable, "-c", "from homediag.server import check_startup; check_startup()"],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        lines = [line for line in check.stderr.strip().splitlines() if line.strip()]
        raise fail(f"cannot serve: {lines[-1] if lines else f'the app did not start (exit {check.returncode})'}")
    serve_workers(host or settings.host, port or settings.port, workers)


@app.command(
    # the help as one line, as it is listed under the root command (a docstring's line break would show there)
    help="Fresh demo pilot on SQLite: keys, synthetic patients, consents and cuff readings sent through POST /ingest;"
    " then serve."
)
def demo(
    seed_only: Annotated[
        bool, typer.Option("--seed-only", help="seed the demo database and exit without serving")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the database, tokens and patients as JSON")] = False,
    directory: Annotated[Path, typer.Option(help="where the demo database and key file go (wiped first)")] = Path(
        ".homediag-demo"
    ),
    patients: Annotated[int, typer.Option(help="how many synthetic patients")] = 20,
    days: Annotated[int, typer.Option(help="how many days of readings")] = 30,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    from homediag.demo import build_demo, print_summary, serve_demo

    result = build_demo(directory, patients=patients, days=days)
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
    else:
        print_summary(result, f"http://{host}:{port}")
    if not seed_only:
        serve_demo(result, host, port)
