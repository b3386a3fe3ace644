"""``homediag profiles``: validate FHIR resources against the project's profiles; list and publish the profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from homediag.fhir_profiles import fhirjson

app = typer.Typer(help="The project's FHIR profiles: validate resources against them.", no_args_is_help=True)


@app.command("validate")
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


@app.command("list")
def profiles_list() -> None:
    """The profiles: id, canonical URL, codes and canonical unit of each."""
    from homediag.fhir_profiles.profiles import PROFILES

    for profile in PROFILES.values():
        m = profile.measurement
        codes = " ".join(f"{c.code}" for c in m.codings)
        typer.echo(f"{profile.id:42} {m.kind:8} {m.unit or '-':9} {codes:32} {profile.url}")


@app.command("publish")
def profiles_publish(
    root: Annotated[Path, typer.Option(help="the repository root")] = Path("."),
) -> None:
    """Regenerate the StructureDefinitions and docs/profiles.md from fhir_profiles/measurements.toml."""
    from homediag.fhir_profiles.publish import write_published

    for path in write_published(root / "fhir_profiles" / "structuredefinitions", root / "docs" / "profiles.md"):
        typer.echo(f"wrote {path}")
