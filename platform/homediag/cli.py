"""The ``homediag`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from homediag.fhir_profiles import fhirjson

app = typer.Typer(help="homediag: the home-diagnostics pilot platform.", no_args_is_help=True, add_completion=False)
adapters_app = typer.Typer(help="Device adapters: list them, convert a payload.", no_args_is_help=True)
keys_app = typer.Typer(help="The key file (pseudonym, vault and audit keys).", no_args_is_help=True)
users_app = typer.Typer(help="Users, gateways and their API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
careteams_app = typer.Typer(
    help="Care teams: a clinician reads only the patients of its teams (with consent).", no_args_is_help=True
)
gateways_app = typer.Typer(help="Gateways: which patients a gateway may upload for.", no_args_is_help=True)
consents_app = typer.Typer(
    help="Patients' consents: record, withdraw, list (every change is kept as a version).", no_args_is_help=True
)
profiles_app = typer.Typer(help="The project's FHIR profiles: validate resources against them.", no_args_is_help=True)
app.add_typer(adapters_app, name="adapters")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(profiles_app, name="profiles")
app.add_typer(consents_app, name="consents")
app.add_typer(careteams_app, name="careteams")
app.add_typer(gateways_app, name="gateways")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _runtime():  # type: ignore[no-untyped-def]
    from homediag.keys import KeyError_
    from homediag.runtime import Runtime

    try:
        return Runtime.from_settings()
    except KeyError_ as exc:
        raise _fail(str(exc)) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (default HOMEDIAG_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default HOMEDIAG_PORT or 8000)")] = None,
) -> None:
    """Serve the API (settings from HOMEDIAG_* environment variables)."""
    from homediag.api.app import create_app
    from homediag.server import serve as run
    from homediag.settings import get_settings

    settings = get_settings()
    run(create_app(_runtime()), host or settings.host, port or settings.port)


@app.command()
def demo(
    seed_only: Annotated[
        bool, typer.Option("--seed-only", help="seed the demo database and exit without serving")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the database, tokens and patients as JSON")] = False,
    directory: Annotated[Path, typer.Option(help="where the demo database and key file go (wiped first)")] = Path(
        ".homediag-demo"
    ),
    patients: Annotated[int, typer.Option(help="how many synthetic patients")] = 20,
    days: Annotated[int, typer.Option(help="how many days of readings")] = 30,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Fresh demo pilot on SQLite: keys, synthetic patients, consents and cuff readings sent through POST /ingest; then serve."""
    from homediag.demo import build_demo, print_summary, serve_demo

    result = build_demo(directory, patients=patients, days=days)
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
    else:
        print_summary(result, f"http://{host}:{port}")
    if not seed_only:
        serve_demo(result, host, port)


@adapters_app.command("list")
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
            f"{refused.name:24} REFUSED (from {refused.distribution or 'an unknown package'}, {refused.entry_point}): {refused.reason}"
        )


@adapters_app.command("convert")
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
        raise _fail("give exactly one of --hex or --file", 2)
    if file is not None:
        try:
            payload = file.read_bytes()
        except OSError as exc:
            raise _fail(f"cannot read {file}: {exc.strerror}", 2) from None
    else:
        try:
            payload = bytes.fromhex(str(hex_payload).replace(" ", "").replace(":", ""))
        except ValueError:
            typer.echo(
                fhirjson.dumps_pretty(
                    operation_outcome(
                        [
                            Issue(
                                "error",
                                "structure",
                                "--hex is not valid hexadecimal (an even number of 0-9/a-f digits)",
                                "--hex",
                            )
                        ]
                    )
                )
            )
            raise typer.Exit(1) from None
    ok, document = convert(adapter, payload)
    typer.echo(fhirjson.dumps_pretty(document))
    if not ok:
        raise typer.Exit(1)


@adapters_app.command("test")
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
            help="write the current output as the expected file of every case that has none or fails (then check those files by hand)",
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
        raise _fail(str(exc), 2) from None
    typer.echo(format_report(report))
    if not report.ok:
        raise typer.Exit(1)


@keys_app.command("init")
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
        raise _fail(str(exc)) from None
    typer.echo(f"wrote {target} (mode 600). Keep a copy somewhere safe: without it the vault cannot be read.")


@keys_app.command("rotate")
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
        raise _fail(
            "keys come from HOMEDIAG_KEYS_JSON: rotate them where they are kept; this command rewrites a key file", 2
        )
    rt = _runtime()
    try:
        report = rotate(
            rt,
            Principal("cli", "homediag keys rotate", "admin", None),
            settings.key_file,
            vault=vault,
            pseudonym=pseudonym,
        )
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    typer.echo(
        f"rotated (vault={vault}, pseudonym={pseudonym}): {report.identities} identities, {report.uploads} uploads re-sealed; {report.patients} patient keys moved; key file {settings.key_file} replaced"
    )


@users_app.command("add")
def users_add(
    role: Annotated[str, typer.Option(help="clinician, gateway, admin, evaluator or vendor")],
    name: Annotated[str, typer.Option(help="who or what the user is")],
    organisation: Annotated[str | None, typer.Option(help="organisation (for vendors, the device maker)")] = None,
    expires_days: Annotated[int | None, typer.Option(help="the token stops working after this many days")] = None,
) -> None:
    """Create a user or gateway and print its token, once."""
    from datetime import timedelta

    from homediag.clock import utcnow
    from homediag.users import create_user

    rt = _runtime()
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days is not None else None
    try:
        with rt.sessions.begin() as session:
            user, token = create_user(session, name=name, role=role, organisation=organisation, expires_at=expires_at)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    typer.echo(f"{user.id}\t{user.role}\t{token}")
    typer.echo("The token is shown only now; the platform keeps only its hash.", err=True)


@users_app.command("revoke")
def users_revoke(user_id: Annotated[str, typer.Argument(help="the user id `users add` printed")]) -> None:
    """Revoke a user's token: it stops working on the next request."""
    from homediag.users import revoke_user

    rt = _runtime()
    with rt.sessions.begin() as session:
        if not revoke_user(session, user_id):
            raise _fail(f"no user {user_id!r}")
    typer.echo(f"revoked {user_id}")


@users_app.command("list")
def users_list() -> None:
    """The users: id, role, organisation, name, and whether the token is revoked or expired."""
    from homediag.users import list_users

    rt = _runtime()
    with rt.sessions() as session:
        for user in list_users(session):
            typer.echo(f"{user.id}\t{user.role}\t{user.organisation or '-'}\t{user.name}\t{user.state}")


CLI_ADMIN_ID = "cli-admin"


def _cli_admin():  # type: ignore[no-untyped-def]
    from homediag.users import Principal

    return Principal(CLI_ADMIN_ID, "homediag command line", "admin", None)


@consents_app.command("add")
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
        raise _fail(f"--start/--end: {exc}", 2) from None
    resource = treatment_consent(
        f"Patient/{patient}",
        purposes=purpose,
        start=first,
        end=last,
        scope="treatment" if "TREAT" in purpose else "research",
    )
    try:
        stored = enrolment.record_consent(_runtime(), _cli_admin(), resource)
    except enrolment.Invalid as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(stored["id"])


@consents_app.command("withdraw")
def consents_withdraw(consent_id: Annotated[str, typer.Argument(help="the consent's id")]) -> None:
    """Withdraw a consent (status inactive, a new version): effective on the next request."""
    from homediag import enrolment

    rt = _runtime()
    try:
        current = enrolment.read_consent(rt, consent_id)
        stored = enrolment.record_consent(rt, _cli_admin(), {**current, "status": "inactive"}, consent_id)
    except (enrolment.Missing, enrolment.Invalid) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"withdrew {consent_id} (version {stored['meta']['versionId']})")


@consents_app.command("list")
def consents_list(patient: Annotated[str | None, typer.Option(help="only this patient's")] = None) -> None:
    """Consents: id, patient, status, version, purposes."""
    from homediag import enrolment

    for c in enrolment.consents_of(_runtime(), patient):
        purposes = sorted({p["code"] for prov in [c.get("provision") or {}] for p in prov.get("purpose", [])})
        typer.echo(
            f"{c['id']}\t{c['patient']['reference']}\t{c['status']}\tv{c['meta']['versionId']}\t{','.join(purposes)}"
        )


def _care(action, *args):  # type: ignore[no-untyped-def]
    from homediag import care

    rt = _runtime()
    try:
        with rt.sessions.begin() as session:
            return action(session, rt.keys, _cli_admin(), *args)
    except care.Unknown as exc:
        raise _fail(str(exc)) from None


@careteams_app.command("create")
def careteams_create(
    name: Annotated[str, typer.Argument(help="the team's name, e.g. 'Medicinsk afd. hjemmemonitorering'")],
    pilot: Annotated[str | None, typer.Option(help="the pilot (default HOMEDIAG_PILOT)")] = None,
) -> None:
    """Create a care team; prints its id."""
    from homediag import care
    from homediag.settings import get_settings

    team = _care(care.create_team, name, pilot or get_settings().pilot)
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

    _care(care.add_member, team, user)
    typer.echo(f"{user} is on {team}")


@careteams_app.command("add-patient")
def careteams_add_patient(
    team: Annotated[str, typer.Argument(help="the team id")],
    patient: Annotated[str, typer.Argument(help="the patient's id")],
) -> None:
    """Put a patient in a care team's care."""
    from homediag import care

    _care(care.add_patient, team, patient)
    typer.echo(f"Patient/{patient} is in the care of {team}")


@gateways_app.command("assign")
def gateways_assign(
    gateway: Annotated[str, typer.Argument(help="the gateway's user id")],
    patient: Annotated[str, typer.Argument(help="the patient's id")],
) -> None:
    """Enrol a patient on a gateway: from now on it may upload that patient's readings."""
    from homediag import care

    _care(care.assign_gateway, gateway, patient)
    typer.echo(f"{gateway} may upload for Patient/{patient}")


@gateways_app.command("allow-device")
def gateways_allow_device(
    gateway: Annotated[str, typer.Argument(help="the gateway's user id")],
    device: Annotated[
        str, typer.Argument(help="the device's serial, Bluetooth address or PHD identifier; '*' for any device")
    ],
) -> None:
    """Let a gateway upload from a device; uploads from other devices are refused."""
    from homediag import care

    _care(care.allow_device, gateway, device)
    typer.echo(f"{gateway} may upload from {'any device' if device.strip() == care.ANY_DEVICE else device}")


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="a checkpoint file from `homediag audit checkpoint`: also detect a truncated tail"),
    ] = None,
) -> None:
    """Walk the audit hash chain; report the first broken link (exit 1 if any)."""
    from homediag import audit

    rt = _runtime()
    document = None
    if checkpoint is not None:
        try:
            document = json.loads(checkpoint.read_text())
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read the checkpoint {checkpoint}: {exc}", 2) from None
    with rt.sessions() as session:
        results = [audit.verify(session, rt.keys)]
        if document is not None and results[0].ok:
            results.append(audit.verify_checkpoint(session, rt.keys, document))
    for result in results:
        typer.echo(result.message)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Annotated[Path | None, typer.Option(help="write it to this file (default: print it)")] = None,
) -> None:
    """Export a signed checkpoint of where the audit chain ends now; keep it outside the database."""
    from homediag import audit

    rt = _runtime()
    with rt.sessions() as session:
        document = audit.checkpoint(session, rt.keys)
    text = json.dumps(document, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}: record {document['checkpoint']['seq']}")  # type: ignore[index]


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Create or migrate the database schema (Alembic) at HOMEDIAG_DATABASE_URL."""
    from homediag.settings import get_settings
    from homediag.store.database import upgrade

    upgrade(get_settings().database_url, revision)
    typer.echo(f"database at revision {revision}")


@profiles_app.command("validate")
def profiles_validate(
    files: Annotated[list[Path], typer.Argument(help="FHIR JSON files: resources or Bundles")],
) -> None:
    """Validate FHIR resources (structure and the project's profile rules); print one OperationOutcome.

    Exit 1 when any file has an error. Each issue's expression starts with the file (and Bundle entry).
    """
    from homediag.fhir_profiles import Issue, has_errors, operation_outcome, validate

    issues: list[Issue] = []
    for path in files:
        try:
            resource = fhirjson.loads(path.read_bytes())
        except OSError as exc:
            issues.append(Issue("fatal", "not-found", f"cannot read the file: {exc.strerror}", str(path)))
            continue
        except ValueError as exc:
            issues.append(Issue("fatal", "structure", f"not JSON: {exc}", str(path)))
            continue
        targets = [(str(path), resource)]
        if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
            targets += [
                (f"{path}#entry[{i}]", e.get("resource"))
                for i, e in enumerate(resource.get("entry") or [])
                if isinstance(e, dict) and e.get("resource")
            ]
        for where, target in targets:
            if not isinstance(target, dict):
                issues.append(
                    Issue("fatal", "structure", "not a FHIR resource (a JSON object with resourceType)", where)
                )
                continue
            for issue in validate(target):
                issues.append(
                    Issue(
                        issue.severity,
                        issue.code,
                        issue.diagnostics,
                        f"{where}: {issue.expression or target.get('resourceType')}",
                    )
                )
    typer.echo(fhirjson.dumps_pretty(operation_outcome(issues)))
    if has_errors(issues):
        raise typer.Exit(1)


@profiles_app.command("list")
def profiles_list() -> None:
    """The profiles: id, canonical URL, codes and canonical unit of each."""
    from homediag.fhir_profiles.profiles import PROFILES

    for profile in PROFILES.values():
        m = profile.measurement
        codes = " ".join(f"{c.code}" for c in m.codings)
        typer.echo(f"{profile.id:42} {m.kind:8} {m.unit or '-':9} {codes:32} {profile.url}")


@profiles_app.command("publish")
def profiles_publish(
    root: Annotated[Path, typer.Option(help="the repository root")] = Path("."),
) -> None:
    """Regenerate the StructureDefinitions and docs/profiles.md from fhir_profiles/measurements.toml."""
    from homediag.fhir_profiles.publish import write_published

    for path in write_published(root / "fhir_profiles" / "structuredefinitions", root / "docs" / "profiles.md"):
        typer.echo(f"wrote {path}")


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
