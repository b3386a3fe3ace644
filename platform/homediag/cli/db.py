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


@app.command("partitions")
def db_partitions(
    ahead: Annotated[int, typer.Option(help="months after this one to make")] = 3,
) -> None:
    """PostgreSQL: make the monthly partitions of ``observation`` up to AHEAD months from now (run monthly)."""
    from sqlalchemy import create_engine

    from homediag.settings import get_settings
    from homediag.store.partitions import ensure_observation_partitions

    engine = create_engine(get_settings().database_url)
    try:
        with engine.begin() as conn:
            made = ensure_observation_partitions(conn, ahead=ahead)
    finally:
        engine.dispose()
    typer.echo(f"made {len(made)} partitions: {', '.join(made)}" if made else "no partitions to make")
