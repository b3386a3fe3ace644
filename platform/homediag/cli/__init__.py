"""The ``homediag`` command: the Typer app, one module per command group.

| module | commands |
|---|---|
| ``serve`` | ``serve``, ``demo`` |
| ``send`` | ``send`` (a gateway's envelopes from files to a server, ``homediag.sender``) |
| ``adapters`` | ``adapters list|convert|test`` |
| ``keys`` | ``keys init|rotate`` |
| ``users`` | ``users add|revoke|list`` |
| ``audit`` | ``audit verify|checkpoint`` |
| ``db`` | ``db upgrade`` |
| ``profiles`` | ``profiles validate|list|publish`` |
| ``consents`` | ``consents add|withdraw|list`` |
| ``care`` | ``careteams create|add-member|add-patient``, ``gateways assign|allow-device`` |
| ``evaluation`` | ``evaluation export|report`` (as an evaluator) |
| ``monitoring`` | ``monitoring groups|settings|set|preview|status|worklist|acknowledge|review-times`` |
| ``common`` | the runtime, the command line's admin, ``fail``, and the one error path of a ``ServiceError`` |

Commands are thin: they read arguments, call the service and print. A ``homediag.errors.ServiceError`` from any
command ends in ``common.CommandLine``: its issues' diagnostics on stderr, exit 1.
"""

from __future__ import annotations

import typer

from homediag.cli import (
    adapters,
    audit,
    care,
    consents,
    db,
    evaluation,
    keys,
    monitoring,
    profiles,
    send,
    serve,
    users,
)
from homediag.cli.common import CommandLine

app = typer.Typer(
    cls=CommandLine,
    help="homediag: the home-diagnostics pilot platform.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(serve.app)  # serve, demo
app.add_typer(send.app)  # send
app.add_typer(adapters.app, name="adapters")
app.add_typer(keys.app, name="keys")
app.add_typer(users.app, name="users")
app.add_typer(audit.app, name="audit")
app.add_typer(db.app, name="db")
app.add_typer(profiles.app, name="profiles")
app.add_typer(consents.app, name="consents")
app.add_typer(care.careteams_app, name="careteams")
app.add_typer(care.gateways_app, name="gateways")
app.add_typer(evaluation.app, name="evaluation")
app.add_typer(monitoring.app, name="monitoring")


def main() -> None:
    app()
