"""``homediag send``: a gateway's envelopes from files to a server's ``POST /ingest`` (``homediag.sender``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from homediag.cli.common import fail

app = typer.Typer()  # its command joins the root command (``add_typer`` without a name)


@app.command(
    help="Send envelopes (JSON Lines, or JSON: one envelope or an array; - for standard input) to a server's"
    " POST /ingest as a gateway: in lists, several at once, sent again when the server is away. Exit 1 when an"
    " envelope was rejected or could not be sent, 2 when the files or options are wrong."
)
def send(
    files: Annotated[list[Path], typer.Argument(help="files of envelopes, read in order; - reads standard input")],
    url: Annotated[
        str | None, typer.Option("--url", envvar="HOMEDIAG_URL", help="the server, e.g. https://homediag.example")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="HOMEDIAG_TOKEN", help="the gateway's API token")
    ] = None,
    list_size: Annotated[
        int,
        typer.Option(
            "--list-size", min=1, help="envelopes a list (at most the server's HOMEDIAG_MAX_ENVELOPES_PER_LIST)"
        ),
    ] = 100,
    at_once: Annotated[
        int, typer.Option("--at-once", min=1, help="lists in flight at once: as many as the server has workers")
    ] = 2,
    attempts: Annotated[int, typer.Option(min=1, help="tries per list while the server is away (503, no answer)")] = 5,
    results: Annotated[
        Path | None, typer.Option("--results", help="write each envelope's result here, a JSON line each")
    ] = None,
) -> None:
    from homediag.sender import Sender, lists, read

    if not url:
        raise fail("the server's address is needed: --url or HOMEDIAG_URL", 2)
    if not token:
        raise fail("a gateway's API token is needed: --token or HOMEDIAG_TOKEN", 2)
    for path in files:
        if str(path) != "-" and not path.is_file():
            raise fail(f"{path}: no such file", 2)

    def retrying(where: str, why: str) -> None:
        typer.echo(f"sending the list from {where} again: {why}", err=True)

    sender = Sender(url, token, at_once=at_once, attempts=attempts, on_retry=retrying)
    counts: dict[str, int] = {}
    out = results.open("w", encoding="utf-8") if results is not None else None
    try:
        for sent in sender.send(lists(read(files, sys.stdin.buffer), list_size)):
            counts[sent.outcome] = counts.get(sent.outcome, 0) + 1
            if out is not None:
                out.write(json.dumps(sent.as_json(), ensure_ascii=False) + "\n")
            elif sent.outcome in ("rejected", "unsent"):
                typer.echo(f"{sent.where}: {sent.outcome}: {'; '.join(sent.issues)}", err=True)
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read the envelopes: {exc}", 2) from None
    finally:
        if out is not None:
            out.close()
    total = sum(counts.values())
    order = ("created", "duplicate", "held", "discarded", "rejected", "unsent")
    said = ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
    typer.echo(f"{total} envelopes: {said or 'none read'}")
    if counts.get("rejected") or counts.get("unsent"):
        raise typer.Exit(1)
