"""Whom a PHD gateway's Observations are about: ``Patient/{our id}``, a Patient in the Bundle, or a logical
``subject.identifier``, each naming an enrolled patient by its CPR or a registered alias. A Patient sent
here is never stored and never becomes an identity."""

from __future__ import annotations

from typing import Any

from homediag.aliases import lookup_patient_key
from homediag.errors import Unprocessable
from homediag.fhir_profiles import Issue
from homediag.identity import CPR_SYSTEM, InvalidCpr
from homediag.ingest.pipeline import Admitted, not_enrolled
from homediag.store.repositories import patients

from .constants import WHAT
from .context import Context
from .entries import Entry
from .references import device_reference

NOT_ENROLLED = not_enrolled(WHAT)


def _resolve_identifier(ctx: Context, system: Any, value: Any, where: str) -> tuple[str | None, Issue | None]:
    if not (isinstance(system, str) and isinstance(value, str) and system and value):
        return None, Issue("error", "required", "a patient identifier needs a system and a value", where)
    try:
        return lookup_patient_key(ctx.session, ctx.rt.keys, system, value), None
    except InvalidCpr as exc:
        return None, Issue("error", "value", f"the CPR identifier: {exc}", f"{where}.value")


def _admit(ctx: Context, pkey: str | None, where: str) -> tuple[Admitted | None, Issue | None]:
    try:
        return ctx.pipeline.admit_patient(ctx.session, ctx.sender, pkey, where=where, what=WHAT), None
    except Unprocessable as exc:
        return None, exc.issues[0]


def patient_entry(ctx: Context, e: Entry) -> None:
    """A Patient in the Bundle only names whom the Observations are about; it is never stored."""
    keys: set[str] = set()
    for n, ident in enumerate(e.resource.get("identifier") or []):
        if not isinstance(ident, dict):
            continue
        pkey, issue = _resolve_identifier(ctx, ident.get("system"), ident.get("value"), f"Patient.identifier[{n}]")
        if issue is not None:
            return e.fail(issue)
        if pkey is not None:
            keys.add(pkey)
    if len(keys) > 1:
        text = "the Patient's identifiers name different patients"
        return e.fail(Issue("error", "business-rule", text, "Patient.identifier"))
    if not keys and not e.resource.get("identifier"):
        text = f"a Patient needs an identifier: its CPR ({CPR_SYSTEM}) or one registered for an enrolled patient"
        return e.fail(Issue("error", "required", text, "Patient.identifier"))
    pkey = next(iter(keys), None)
    patient, issue = _admit(ctx, pkey, "Patient.identifier")
    ctx.note_patient_key(pkey)
    if patient is None:
        return e.fail(issue)  # type: ignore[arg-type]
    e.patient = patient
    e.result.status, e.result.location = 200, f"Patient/{patient.id}"


def observation_subject(ctx: Context, e: Entry) -> None:
    """The subject of an Observation: the patient, or for a coincident time stamp the device."""
    subject = e.resource.get("subject")
    if not isinstance(subject, dict):
        text = "an Observation needs a subject: the patient (Patient/{id}, a Patient in the Bundle, or an identifier)"
        return e.fail(Issue("error", "required", text, "Observation.subject"))
    target = subject.get("reference")
    if isinstance(target, str) and target:
        entry = ctx.by_url.get(target)
        if entry is not None and entry.rtype == "Patient":
            if entry.failed:
                reason = (
                    NOT_ENROLLED
                    if any(NOT_ENROLLED == i.diagnostics for i in entry.result.issues)
                    else f"the Patient {target} (Bundle.entry[{entry.result.index}]) was refused"
                )
                return e.fail(Issue("error", "business-rule", reason, "Observation.subject"))
            e.patient = entry.patient
        elif (entry is not None and entry.rtype == "Device") or (entry is None and target.startswith("Device/")):
            dev, issue = device_reference(ctx, subject, "Observation.subject")
            if issue is not None:
                return e.fail(issue)
            e.subject_device = dev
        elif entry is None and target.startswith("Patient/"):
            pkey = patients.key_by_id(ctx.session, target.removeprefix("Patient/"))
            patient, issue = _admit(ctx, pkey, "Observation.subject")
            if issue is not None:
                return e.fail(Issue(issue.severity, issue.code, f"{target}: {issue.diagnostics}", issue.expression))
            e.patient = patient
        else:
            text = (
                f"Observation.subject {target!r} is neither Patient/{{id}} of an enrolled patient nor a Patient or"
                " Device in the Bundle"
            )
            return e.fail(Issue("error", "not-found", text, "Observation.subject"))
    elif isinstance(subject.get("identifier"), dict):
        ident = subject["identifier"]
        where = "Observation.subject.identifier"
        pkey, issue = _resolve_identifier(ctx, ident.get("system"), ident.get("value"), where)
        if issue is not None:
            return e.fail(issue)
        ctx.note_patient_key(pkey)
        patient, issue = _admit(ctx, pkey, "Observation.subject")
        if issue is not None:
            return e.fail(issue)
        e.patient = patient
    else:
        text = "Observation.subject needs a reference or an identifier"
        return e.fail(Issue("error", "required", text, "Observation.subject"))
