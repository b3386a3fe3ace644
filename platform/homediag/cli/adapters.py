"""``homediag adapters``: list the device adapters, convert one payload, run the conformance kit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from homediag.cli.common import fail
from homediag.fhir_profiles import fhirjson

app = typer.Typer(help="Device adapters: list them, convert a payload.", no_args_is_help=True)


@app.command("list")
def adapters_list() -> None:
    """The adapter ids, with what each reads."""
    from homediag.adapters.devices import all_adapters
    from homediag.adapters.devices.registry import refused_adapters, source

    for adapter in all_adapters():
        origin = source(adapter.id)
        vendor = "" if origin.builtin else f" (from {origin.distribution or origin.entry_point})"
        typer.echo(f"{adapter.id:24} {adapter.description} [reads: {', '.join(adapter.reads)}]{vendor}")
    for refused in refused_adapters():
        typer.echo(
            f"{refused.name:24} REFUSED"
            f" (from {refused.distribution or 'an unknown package'}, {refused.entry_point}): {refused.reason}"
        )


@app.command("convert")
def adapters_convert(
    adapter: Annotated[str, typer.Argument(help="adapter id, e.g. ble-blood-pressure")],
    hex_payload: Annotated[str | None, typer.Option("--hex", help="the payload as hexadecimal")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="a file holding the payload bytes")] = None,
) -> None:
    """Decode one payload and print a FHIR Bundle (collection) of its Observations. Stores nothing.

    A payload the adapter must refuse: exit 1, and an OperationOutcome on stdout saying what is wrong and where.
    """
    from homediag.convert import convert
    from homediag.fhir_profiles import Issue, operation_outcome

    if (hex_payload is None) == (file is None):
        raise fail("give exactly one of --hex or --file", 2)
    if file is not None:
        try:
            payload = file.read_bytes()
        except OSError as exc:
            raise fail(f"cannot read {file}: {exc.strerror}", 2) from None
    else:
        try:
            payload = bytes.fromhex(str(hex_payload).replace(" ", "").replace(":", ""))
        except ValueError:
            not_hex = Issue(
                "error", "structure", "--hex is not valid hexadecimal (an even number of 0-9/a-f digits)", "--hex"
            )
            typer.echo(fhirjson.dumps_pretty(operation_outcome([not_hex])))
            raise typer.Exit(1) from None
    ok, document = convert(adapter, payload)
    typer.echo(fhirjson.dumps_pretty(document))
    if not ok:
        raise typer.Exit(1)


@app.command("test")
def adapters_test(
    adapter: Annotated[str, typer.Argument(help="adapter id, e.g. acme-thermo-json")],
    cases: Annotated[
        Path,
        typer.Argument(help="folder of cases: NAME.hex, NAME.bin or NAME.json payloads, each with NAME.expected.json"),
    ],
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="write the current output as the expected file of every case that has none or fails"
            " (then check those files by hand)",
        ),
    ] = False,
) -> None:
    """Conformance kit: run a folder of sample payloads against their expected Observations (golden files).

    Prints PASS or FAIL per case, with a unified diff for each mismatch; exit 1 on any failure.
    NAME.expected.json is a FHIR Bundle of the expected Observations, or {"refuse": "text"} for a
    payload that must be refused. Built with a fixed context: Patient/example, Device/example,
    gateway receive time 2026-01-01T00:00:00Z. Stores nothing.
    """
    from homediag.adapters.devices import UnknownAdapter
    from homediag.conformance import KitError, format_report, run_kit

    try:
        report = run_kit(adapter, cases, update=update)
    except (UnknownAdapter, KitError) as exc:
        raise fail(str(exc), 2) from None
    typer.echo(format_report(report))
    if not report.ok:
        raise typer.Exit(1)
