"""``homediag send``: a gateway's envelopes from files to a server's ``POST /ingest`` (``homediag.sender``)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from homediag.cli.common import fail

if TYPE_CHECKING:
    from homediag.sender import Item

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
        int | None,
        typer.Option("--list-size", min=1, help="envelopes a list (default 100, or fewer when the server takes fewer)"),
    ] = None,
    at_once: Annotated[
        int | None,
        typer.Option(
            "--at-once",
            min=1,
            help="lists in flight at once (default: as many as the server says, GET /ingest; else 2)",
        ),
    ] = None,
    attempts: Annotated[int, typer.Option(min=1, help="tries per list while the server is away (503, no answer)")] = 5,
    results: Annotated[
        Path | None, typer.Option("--results", help="write each envelope's result here, a JSON line each")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="add to the --results file, and send only what it does not say the server answered"
        ),
    ] = False,
) -> None:
    from rich.console import Console
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from homediag.sender import Sender, Unreadable, answered, ask_limits, lists, read

    if not url:
        raise fail("the server's address is needed: --url or HOMEDIAG_URL", 2)
    if not token:
        raise fail("a gateway's API token is needed: --token or HOMEDIAG_TOKEN", 2)
    for path in files:
        if str(path) != "-" and not path.is_file():
            raise fail(f"{path}: no such file", 2)
    if resume and results is None:
        raise fail("--resume reads and adds to the --results file: give it", 2)
    done: set[str] = set()
    if resume and results is not None and results.exists():
        with results.open(encoding="utf-8") as earlier:
            done = answered(earlier)
    console = Console(stderr=True)  # progress on a terminal only; messages always
    progress = Progress(
        TextColumn("{task.completed:.0f} envelopes answered {task.fields[said]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=True,
    )

    def say(text: str) -> None:  # as written: a file's name or the server's words are no Rich markup
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    def retrying(where: str, why: str) -> None:
        say(f"sending the list from {where} again: {why}")

    if list_size is None or at_once is None:  # as the server asks, when it says
        limits = ask_limits(url, token)
        if list_size is None:
            list_size = min(100, limits.max_envelopes_per_list) if limits is not None else 100
        if at_once is None:
            at_once = limits.lists_at_once if limits is not None else 2
    sender = Sender(url, token, at_once=at_once, attempts=attempts, on_retry=retrying)
    counts: Counter[str] = Counter()
    unsent: Counter[str] = Counter()  # why, once for all the envelopes it held back (a refused token: every one)
    out = results.open("a" if resume else "w", encoding="utf-8") if results is not None else None
    skipped = 0

    def to_send(items: Iterable[Item]) -> Iterator[Item]:
        nonlocal skipped
        for item in items:
            if item.where in done:
                skipped += 1
            else:
                yield item

    try:
        with progress:
            task = progress.add_task("send", total=None, said="")
            for sent in sender.send(lists(to_send(read(files, sys.stdin.buffer)), list_size)):
                counts[sent.outcome] += 1
                if out is not None:  # each line at once: a send killed midway resumes from all it was told
                    out.write(json.dumps(sent.as_json(), ensure_ascii=False) + "\n")
                    out.flush()
                if sent.outcome == "unsent":
                    unsent["; ".join(sent.issues)] += 1
                elif sent.outcome == "rejected" and out is None:
                    say(f"{sent.where}: rejected: {'; '.join(sent.issues)}")
                progress.update(task, advance=1, said=_said(counts))
    except Unreadable as exc:
        raise fail(str(exc), 2) from None
    finally:
        if out is not None:
            out.close()
    for why, n in unsent.items():
        typer.echo(f"{n} envelopes not sent: {why}", err=True)
    before = f" ({skipped} answered before, not sent again)" if resume else ""
    typer.echo(f"{sum(counts.values())} envelopes: {_said(counts) or 'none sent'}{before}")
    if counts["rejected"] or counts["unsent"]:
        raise typer.Exit(1)


def _said(counts: Counter[str]) -> str:
    order = ("created", "duplicate", "held", "discarded", "rejected", "unsent")
    return ", ".join(f"{counts[k]} {k}" for k in order if counts[k])
