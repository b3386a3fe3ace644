"""``homediag keys``: create the key file; rotate keys and re-key the stored data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from homediag.cli.common import fail, runtime

app = typer.Typer(help="The key file (pseudonym, vault and audit keys).", no_args_is_help=True)


@app.command("init")
def keys_init(
    path: Annotated[Path | None, typer.Option(help="where to write it (default HOMEDIAG_KEY_FILE)")] = None,
) -> None:
    """Create the key file (pseudonym, vault and audit keys), mode 0600, outside the database."""
    from homediag.keys import KeyError_, KeyRing, write_key_file
    from homediag.settings import get_settings

    target = path or get_settings().key_file
    try:
        write_key_file(target, KeyRing.generate())
    except KeyError_ as exc:
        raise fail(str(exc)) from None
    typer.echo(f"wrote {target} (mode 600). Keep a copy somewhere safe: without it the vault cannot be read.")


@app.command("rotate")
def keys_rotate(
    vault: Annotated[
        bool, typer.Option("--vault", help="re-encrypt the identity vault and the upload log under a new vault key")
    ] = False,
    pseudonym: Annotated[
        bool, typer.Option("--pseudonym", help="move every patient to a new patient key (new pseudonym key)")
    ] = False,
) -> None:
    """Rotate keys in the key file (HOMEDIAG_KEY_FILE) and re-key the stored data, in one transaction."""
    from homediag.rotation import rotate
    from homediag.settings import get_settings
    from homediag.users import Principal

    settings = get_settings()
    if settings.keys_json:
        raise fail(
            "keys come from HOMEDIAG_KEYS_JSON: rotate them where they are kept; this command rewrites a key file", 2
        )
    rt = runtime()
    try:
        report = rotate(
            rt,
            Principal("cli", "homediag keys rotate", "admin", None),
            settings.key_file,
            vault=vault,
            pseudonym=pseudonym,
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    typer.echo(
        f"rotated (vault={vault}, pseudonym={pseudonym}):"
        f" {report.identities} identities, {report.uploads} uploads re-sealed; {report.patients} patient keys moved;"
        f" key file {settings.key_file} replaced"
    )
