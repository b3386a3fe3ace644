"""``homediag audit``: verify the hash-chained audit log; export a signed checkpoint of where it ends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from homediag.cli.common import fail, runtime

app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


@app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="a checkpoint file from `homediag audit checkpoint`: also detect a truncated tail"),
    ] = None,
) -> None:
    """Walk the audit hash chain; report the first broken link (exit 1 if any)."""
    from homediag import audit

    rt = runtime()
    document = None
    if checkpoint is not None:
        try:
            document = json.loads(checkpoint.read_text())
        except (OSError, ValueError) as exc:
            raise fail(f"cannot read the checkpoint {checkpoint}: {exc}", 2) from None
    with rt.sessions() as session:
        results = [audit.verify(session, rt.keys)]
        if document is not None and results[0].ok:
            results.append(audit.verify_checkpoint(session, rt.keys, document))
    for result in results:
        typer.echo(result.message)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option(help="write it to this file (default: print it)")] = None,
) -> None:
    """Export a signed checkpoint of where the audit chain ends now; keep it outside the database."""
    from homediag import audit

    rt = runtime()
    with rt.sessions() as session:
        document = audit.checkpoint(session, rt.keys)
    text = json.dumps(document, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}: record {document['checkpoint']['seq']}")  # type: ignore[index]
