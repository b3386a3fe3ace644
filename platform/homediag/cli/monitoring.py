"""``homediag monitoring``: thresholds and plans, status and worklist, acknowledgements, from the command line.

Monitoring is a clinician's work: each command (but ``groups`` and ``review-times``) acts as the clinician named by
``--clinician`` (an API user id with the role clinician, or ``oidc:<sub>``), decided and audited exactly as the same
request through the HTTP API (``homediag.access``): a patient outside that clinician's care teams, or without
consent for treatment, is unknown. Output is JSON on stdout; errors on stderr with a non-zero exit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from homediag.cli.common import fail, runtime

if TYPE_CHECKING:
    from homediag.runtime import Runtime
    from homediag.users import Principal

app = typer.Typer(
    help="Remote monitoring: thresholds and plans (versioned), triage status, worklist, acknowledgements.",
    no_args_is_help=True,
)

Clinician = Annotated[str, typer.Option(help="act as this clinician (user id, or oidc:<sub>)")]
Days = Annotated[int, typer.Option(help="the period: this many days back from now", min=1, max=400)]


def _print(data: Any) -> None:
    from homediag.fhir_profiles import fhirjson

    typer.echo(fhirjson.dumps_pretty(data))


def _clinician(rt: Runtime, user_id: str) -> Principal:
    from homediag.store import models as m
    from homediag.users import Principal

    if user_id.startswith("oidc:"):
        return Principal(user_id, user_id, "clinician", None)
    with rt.sessions() as session:
        user = session.get(m.User, user_id)
    if user is None or user.role != "clinician":
        raise fail(f"no clinician {user_id!r} (give an API user id with the role clinician, or oidc:<sub>)", 2)
    return Principal(user.id, user.name, user.role, user.organisation)


def _access(user_id: str) -> tuple[Any, Principal, Runtime]:
    from homediag.access import AccessService

    rt = runtime()
    return AccessService(rt), _clinician(rt, user_id), rt


def _read_json(path: Path | None) -> dict[str, Any]:
    from homediag.fhir_profiles import fhirjson

    if path is None:
        return {}
    try:
        body = fhirjson.loads(path.read_bytes())
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror}", 2) from None
    except ValueError as exc:
        raise fail(f"{path}: not JSON: {exc}", 2) from None
    if not isinstance(body, dict):
        raise fail(f"{path}: the settings must be a JSON object", 2)
    return body


@app.command("groups")
def groups() -> None:
    """The default thresholds and plan of each patient group."""
    from homediag.monitoring import default_groups

    _print([{"name": g.name, "title": g.title, **g.settings.to_json()} for g in default_groups().values()])


@app.command("settings")
def settings(patient: Annotated[str, typer.Argument(help="the patient's id")], clinician: Clinician) -> None:
    """The settings in force and every version (who, when)."""
    access, who, _rt = _access(clinician)
    _print(access.monitoring_settings(who, patient))


@app.command("set")
def set_settings(
    patient: Annotated[str, typer.Argument(help="the patient's id")],
    clinician: Clinician,
    version: Annotated[int, typer.Option(help="the version this change is based on (see 'settings'; 0 if none)")],
    file: Annotated[
        Path | None, typer.Option(help="JSON with any of thresholds, weight_change, plan (the rest is kept)")
    ] = None,
    group: Annotated[str | None, typer.Option(help="patient group: start from its default set")] = None,
    valid_from: Annotated[str | None, typer.Option(help="in force from (date-time with offset; default now)")] = None,
    note: Annotated[str | None, typer.Option(help="why")] = None,
) -> None:
    """Record a new version of a patient's thresholds and plan; prints it."""
    body = _read_json(file)
    for key, value in (("group", group), ("valid_from", valid_from), ("note", note)):
        if value is not None:
            body[key] = value
    access, who, _rt = _access(clinician)
    _print(access.record_monitoring_settings(who, patient, body, version))


@app.command("preview")
def preview(
    patient: Annotated[str, typer.Argument(help="the patient's id")],
    clinician: Clinician,
    file: Annotated[Path | None, typer.Option(help="JSON of the proposed settings")] = None,
    group: Annotated[str | None, typer.Option(help="propose this group's default set")] = None,
    days: Days = 30,
) -> None:
    """How many alerts proposed settings would have raised in the last days (stores nothing)."""
    body = _read_json(file)
    if group is not None:
        body["group"] = group
    access, who, _rt = _access(clinician)
    _print(access.preview_alerts(who, patient, body, days))


@app.command("status")
def status(
    patient: Annotated[str, typer.Argument(help="the patient's id")], clinician: Clinician, days: Days = 7
) -> None:
    """A patient's triage colour, reasons, adherence and last review for the last days."""
    access, who, rt = _access(clinician)
    end = rt.clock()
    _print(access.patient_status(who, patient, end - timedelta(days=days), end).to_json())


@app.command("worklist")
def worklist(clinician: Clinician, days: Days = 7) -> None:
    """Every patient in the clinician's care, most severe first."""
    access, who, rt = _access(clinician)
    end = rt.clock()
    _print([s.to_json() for s in access.worklist(who, end - timedelta(days=days), end)])


@app.command("acknowledge")
def acknowledge(
    patient: Annotated[str, typer.Argument(help="the patient's id")],
    clinician: Clinician,
    observation: Annotated[list[str] | None, typer.Option(help="a reading's Observation id (repeat for more)")] = None,
    all_green: Annotated[bool, typer.Option("--all-green", help="every green reading of the last --days")] = False,
    days: Days = 7,
    note: Annotated[str | None, typer.Option(help="a note kept with the review")] = None,
) -> None:
    """Acknowledge readings (named, or all green of a period); prints the Task."""
    if bool(observation) == all_green:
        raise fail("name readings with --observation, or give --all-green (one of the two)", 2)
    access, who, rt = _access(clinician)
    end = rt.clock()
    period: tuple[datetime, datetime] | None = (end - timedelta(days=days), end) if all_green else None
    _print(access.acknowledge(who, patient, observation_ids=observation or None, all_green=period, note=note))


@app.command("review-times")
def review_times() -> None:
    """For the evaluation: how long from reading, and from arrival, to acknowledgement (hours; no patient data)."""
    from homediag.monitoring.store import review_times as times

    rt = runtime()
    with rt.sessions() as session:
        _print(times(session))
