"""What the commands share: the runtime, the command line's admin principal, failing with a message, and the one
error path by which a ``homediag.errors.ServiceError`` ends a command.

Commands stay thin: they read their arguments, call the service and print. A ``ServiceError`` raised anywhere below
a command is not caught by the command: ``CommandLine`` (the root command's class) prints each of its issues'
diagnostics to stderr and exits 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from homediag.errors import ServiceError

if TYPE_CHECKING:
    from homediag.runtime import Runtime
    from homediag.users import Principal

CLI_ADMIN_ID = "cli-admin"
SERVICE_ERROR_EXIT = 1


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` to stderr; the caller raises what this returns (``raise fail(...) from None``)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def service_error_exit(error: ServiceError) -> typer.Exit:
    """The one error path for a ``ServiceError``: each issue's diagnostics on stderr, exit 1."""
    for issue in error.issues:
        typer.echo(f"error: {issue.diagnostics}", err=True)
    return typer.Exit(SERVICE_ERROR_EXIT)


class CommandLine(TyperGroup):
    """The root ``homediag`` command: every subcommand runs inside its ``invoke``, so that a ``ServiceError``
    from any of them ends on the one error path (``service_error_exit``)."""

    def invoke(self, ctx: Any) -> Any:  # a typer (vendored click) Context
        try:
            return super().invoke(ctx)
        except ServiceError as error:
            raise service_error_exit(error) from None


def runtime() -> Runtime:
    """The runtime from the ``HOMEDIAG_*`` settings; a missing or unreadable key file is a clear error."""
    from homediag.keys import KeyError_
    from homediag.runtime import Runtime

    try:
        return Runtime.from_settings()
    except KeyError_ as exc:
        raise fail(str(exc)) from None


def cli_admin() -> Principal:
    """Who the audit log names for a change made on the command line."""
    from homediag.users import Principal

    return Principal(CLI_ADMIN_ID, "homediag command line", "admin", None)
