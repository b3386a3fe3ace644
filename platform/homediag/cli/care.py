"""``homediag careteams`` and ``homediag gateways``: the care relations beyond consent (``homediag.care``).

A clinician reads only the patients of its care teams; a gateway uploads only for the patients enrolled on it and
only from the devices allowed on it. Each change is made as the command line's admin and audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Concatenate, ParamSpec, TypeVar

import typer

from homediag.cli.common import cli_admin, runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from homediag.keys import KeyRing
    from homediag.users import Principal

P = ParamSpec("P")
T = TypeVar("T")

careteams_app = typer.Typer(
    help="Care teams: a clinician reads only the patients of its teams (with consent).", no_args_is_help=True
)
gateways_app = typer.Typer(help="Gateways: which patients a gateway may upload for.", no_args_is_help=True)


def _change(action: Callable[Concatenate[Session, KeyRing, Principal, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run one ``homediag.care`` action in its own transaction, as the command line's admin."""
    rt = runtime()
    with rt.sessions.begin() as session:
        return action(session, rt.keys, cli_admin(), *args, **kwargs)


@careteams_app.command("create")
def careteams_create(
    name: Annotated[str, typer.Argument(help="the team's name, e.g. 'Medicinsk afd. hjemmemonitorering'")],
    pilot: Annotated[str | None, typer.Option(help="the pilot (default HOMEDIAG_PILOT)")] = None,
) -> None:
    """Create a care team; prints its id."""
    from homediag import care
    from homediag.settings import get_settings

    team = _change(care.create_team, name, pilot or get_settings().pilot)
    typer.echo(team.id)


@careteams_app.command("add-member")
def careteams_add_member(
    team: Annotated[str, typer.Argument(help="the team id")],
    user: Annotated[
        str, typer.Argument(help="a clinician's user id, or oidc:<sub> for a person of the identity provider")
    ],
) -> None:
    """Put a clinician on a care team."""
    from homediag import care

    _change(care.add_member, team, user)
    typer.echo(f"{user} is on {team}")


@careteams_app.command("add-patient")
def careteams_add_patient(
    team: Annotated[str, typer.Argument(help="the team id")],
    patient: Annotated[str, typer.Argument(help="the patient's id")],
) -> None:
    """Put a patient in a care team's care."""
    from homediag import care

    _change(care.add_patient, team, patient)
    typer.echo(f"Patient/{patient} is in the care of {team}")


@careteams_app.command("remove-member")
def careteams_remove_member(
    team: Annotated[str, typer.Argument(help="the team id")],
    user: Annotated[str, typer.Argument(help="the clinician's user id, or oidc:<sub>")],
) -> None:
    """Take a clinician off a care team: it stops reading the team's patients."""
    from homediag import care

    _change(care.remove_member, team, user)
    typer.echo(f"{user} is no longer on {team}")


@careteams_app.command("remove-patient")
def careteams_remove_patient(
    team: Annotated[str, typer.Argument(help="the team id")],
    patient: Annotated[str, typer.Argument(help="the patient's id")],
) -> None:
    """Take a patient out of a care team's care (consents and readings are kept)."""
    from homediag import care

    _change(care.remove_patient, team, patient)
    typer.echo(f"Patient/{patient} is no longer in the care of {team}")


@gateways_app.command("assign")
def gateways_assign(
    gateway: Annotated[str, typer.Argument(help="the gateway's user id")],
    patient: Annotated[str, typer.Argument(help="the patient's id")],
) -> None:
    """Enrol a patient on a gateway: from now on it may upload that patient's readings."""
    from homediag import care

    _change(care.assign_gateway, gateway, patient)
    typer.echo(f"{gateway} may upload for Patient/{patient}")


@gateways_app.command("allow-device")
def gateways_allow_device(
    gateway: Annotated[str, typer.Argument(help="the gateway's user id")],
    device: Annotated[
        str, typer.Argument(help="the device's serial, Bluetooth address or PHD identifier; '*' for any device")
    ],
    patient: Annotated[
        str | None,
        typer.Option(help="the patient's id the device is enrolled for: its readings for anyone else are refused"),
    ] = None,
    vendor: Annotated[
        str | None,
        typer.Option(help="the vendor organisation the device belongs to: its uploads show in that vendor's log"),
    ] = None,
) -> None:
    """Let a gateway upload from a device; uploads from other devices are refused."""
    from homediag import care

    _change(care.allow_device, gateway, device, patient_id=patient, vendor=vendor)
    what = "any device" if device.strip() == care.ANY_DEVICE else device
    bound = "".join(
        [f" (enrolled for Patient/{patient})" if patient else "", f" (a device of {vendor})" if vendor else ""]
    )
    typer.echo(f"{gateway} may upload from {what}{bound}")


@gateways_app.command("unassign")
def gateways_unassign(
    gateway: Annotated[str, typer.Argument(help="the gateway's user id")],
    patient: Annotated[str, typer.Argument(help="the patient's id")],
) -> None:
    """Take a patient off a gateway: its further uploads for the patient are refused (and kept in the log)."""
    from homediag import care

    _change(care.unassign_gateway, gateway, patient)
    typer.echo(f"{gateway} may no longer upload for Patient/{patient}")


@gateways_app.command("disallow-device")
def gateways_disallow_device(
    gateway: Annotated[str, typer.Argument(help="the gateway's user id")],
    device: Annotated[str, typer.Argument(help="the device as it was allowed (serial, address, identifier or '*')")],
) -> None:
    """Stop a gateway uploading from a device."""
    from homediag import care

    _change(care.disallow_device, gateway, device)
    typer.echo(f"{gateway} may no longer upload from {device.strip()}")
