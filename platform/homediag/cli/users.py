"""``homediag users``: users and gateways, their API tokens, revoking them."""

from __future__ import annotations

from typing import Annotated

import typer

from homediag.cli.common import cli_admin, fail, runtime

app = typer.Typer(help="Users, gateways and their API tokens.", no_args_is_help=True)


@app.command("add")
def users_add(
    role: Annotated[str, typer.Option(help="clinician, gateway, admin, evaluator or vendor")],
    name: Annotated[str, typer.Option(help="who or what the user is")],
    organisation: Annotated[str | None, typer.Option(help="organisation (for vendors, the device maker)")] = None,
    expires_days: Annotated[int | None, typer.Option(help="the token stops working after this many days")] = None,
) -> None:
    """Create a user or gateway and print its token, once."""
    from datetime import timedelta

    from homediag.clock import utcnow
    from homediag.users import add_user

    rt = runtime()
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days is not None else None
    try:
        with rt.sessions.begin() as session:
            user, token = add_user(
                session, rt.keys, cli_admin(), name=name, role=role, organisation=organisation, expires_at=expires_at
            )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    typer.echo(f"{user.id}\t{user.role}\t{token}")
    typer.echo("The token is shown only now; the platform keeps only its hash.", err=True)


@app.command("revoke")
def users_revoke(user_id: Annotated[str, typer.Argument(help="the user id `users add` printed")]) -> None:
    """Revoke a user's token: it stops working on the next request."""
    from homediag.users import revoke

    rt = runtime()
    with rt.sessions.begin() as session:
        if not revoke(session, rt.keys, cli_admin(), user_id):
            raise fail(f"no user {user_id!r}")
    typer.echo(f"revoked {user_id}")


@app.command("list")
def users_list() -> None:
    """The users: id, role, organisation, name, and whether the token is revoked or expired."""
    from homediag.users import list_users

    rt = runtime()
    with rt.sessions() as session:
        for user in list_users(session):
            typer.echo(f"{user.id}\t{user.role}\t{user.organisation or '-'}\t{user.name}\t{user.state}")


@app.command("signin-link")
def users_signin_link(
    user_id: Annotated[str, typer.Argument(help="a clinician's or administrator's user id (`users list`)")],
    minutes: Annotated[int, typer.Option(help="the link stops working after this many minutes")] = 10,
    base_url: Annotated[
        str | None,
        typer.Option(help="the server's address, e.g. http://127.0.0.1:8000 (default: HOMEDIAG_PUBLIC_BASE_URL)"),
    ] = None,
) -> None:
    """Print a one-time link that signs a person in to the web app (the demo's, or a server without OpenID Connect)."""
    from homediag.settings import get_settings
    from homediag.web.sessions import issue_signin_link

    rt = runtime()
    try:
        path = issue_signin_link(rt, user_id, minutes, actor=cli_admin())
    except ValueError as exc:
        raise fail(str(exc)) from None
    base = base_url or get_settings().public_base_url
    typer.echo(f"{base.rstrip('/')}{path}" if base else path)
    typer.echo(
        f"Valid {minutes} minutes, once; whoever opens it is signed in as {user_id}: give it only to them."
        + ("" if base else " Open it on the server's address (--base-url to print it whole)."),
        err=True,
    )
