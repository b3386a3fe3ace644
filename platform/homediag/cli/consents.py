"""``homediag consents``: record, withdraw and list patients' consents (every change is a new version)."""

from __future__ import annotations

from typing import Annotated

import typer

from homediag.cli.common import cli_admin, fail, runtime

app = typer.Typer(
    help="Patients' consents: record, withdraw, list (every change is kept as a version).", no_args_is_help=True
)


@app.command("add")
def consents_add(
    patient: Annotated[str, typer.Option(help="the patient's id (Patient/<id>)")],
    purpose: Annotated[
        list[str], typer.Option(help="purpose of use permitted: TREAT, HRESCH, HTEST (repeat for more)")
    ],
    start: Annotated[str | None, typer.Option(help="first day the consent applies (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="last day the consent applies (YYYY-MM-DD, inclusive)")] = None,
) -> None:
    """Record a consent that permits the given purposes; prints its id."""
    from datetime import date

    from homediag import enrolment
    from homediag.consent import treatment_consent

    try:
        first = date.fromisoformat(start) if start else None
        last = date.fromisoformat(end) if end else None
    except ValueError as exc:
        raise fail(f"--start/--end: {exc}", 2) from None
    resource = treatment_consent(
        f"Patient/{patient}",
        purposes=purpose,
        start=first,
        end=last,
        scope="treatment" if "TREAT" in purpose else "research",
    )
    stored = enrolment.record_consent(runtime(), cli_admin(), resource)
    typer.echo(stored["id"])


@app.command("withdraw")
def consents_withdraw(consent_id: Annotated[str, typer.Argument(help="the consent's id")]) -> None:
    """Withdraw a consent (status inactive, a new version): effective on the next request."""
    from homediag import enrolment
    from homediag.access import AccessService

    rt = runtime()
    current = AccessService(rt).read_consent(cli_admin(), consent_id)
    stored = enrolment.record_consent(rt, cli_admin(), {**current, "status": "inactive"}, consent_id)
    typer.echo(f"withdrew {consent_id} (version {stored['meta']['versionId']})")


@app.command("list")
def consents_list(patient: Annotated[str | None, typer.Option(help="only this patient's")] = None) -> None:
    """Consents: id, patient, status, version, purposes."""
    from homediag.access import AccessService

    for c in AccessService(runtime()).search_consents(cli_admin(), patient):
        purposes = sorted({p["code"] for prov in [c.get("provision") or {}] for p in prov.get("purpose", [])})
        typer.echo(
            f"{c['id']}\t{c['patient']['reference']}\t{c['status']}\tv{c['meta']['versionId']}\t{','.join(purposes)}"
        )
