"""``homediag db``: the database schema."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Create or migrate the database schema (Alembic) at HOMEDIAG_DATABASE_URL."""
    from homediag.settings import get_settings
    from homediag.store.database import upgrade

    upgrade(get_settings().database_url, revision)
    typer.echo(f"database at revision {revision}")
