"""Enrolment: an administrator enrols a patient in the pilot (identity into the vault) and records consents."""

from __future__ import annotations

import copy
import dataclasses
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from homediag import consent as consent_model
from homediag.errors import NotFound, Unprocessable
from homediag.fhir_profiles import Issue

from . import audit
from .aliases import alias_identifiers, register_aliases
from .clock import from_store, utcnow
from .identity import CPR_SYSTEM, Identity, InvalidCpr, check_cpr, patient_key, seal_identity
from .runtime import Runtime
from .store import models as m
from .users import Principal


class Invalid(Unprocessable):
    """A resource that breaks a rule (HTTP 422); ``issues`` say what and where."""

    def __init__(self, *issues: Issue) -> None:
        super().__init__(issues=list(issues))


class Missing(NotFound):
    """Refers to something that does not exist (HTTP 404)."""


@dataclass(frozen=True)
class Enrolled:
    patient: m.Patient
    created: bool
    warnings: tuple[str, ...]


def enrol_patient(rt: Runtime, actor: Principal, resource: dict[str, Any]) -> Enrolled:
    """``POST /fhir/Patient``: a Patient with a CPR identifier (and a name). Enrolling twice gives the same patient."""
    if resource.get("resourceType") != "Patient":
        raise Invalid(
            Issue("error", "structure", f"expected a Patient, got {resource.get('resourceType')!r}", "resourceType")
        )
    cprs = [i for i in resource.get("identifier") or [] if isinstance(i, dict) and i.get("system") == CPR_SYSTEM]
    if len(cprs) != 1 or not cprs[0].get("value"):
        raise Invalid(
            Issue(
                "error",
                "required",
                f"a Patient to enrol needs exactly one identifier with system {CPR_SYSTEM}",
                "Patient.identifier",
            )
        )
    try:
        cpr = check_cpr(str(cprs[0]["value"]))
    except InvalidCpr as exc:
        raise Invalid(Issue("error", "value", str(exc), "Patient.identifier.value")) from None
    aliases, alias_issues = alias_identifiers(resource)  # every other identifier: an alias (patient_alias, HMAC only)
    if alias_issues:
        raise Invalid(*alias_issues)
    names = resource.get("name") or []
    name = names[0] if names and isinstance(names[0], dict) else None
    pkey = patient_key(cpr.cpr, rt.keys.pseudonym)
    with rt.sessions.begin() as session:
        existing = session.execute(select(m.Patient).where(m.Patient.patient_key == pkey)).scalar_one_or_none()
        if existing is not None:
            conflicts = register_aliases(session, rt.keys, pkey, aliases, actor.id)
            if conflicts:
                raise Invalid(*conflicts)
            audit.append(
                session,
                rt.keys,
                [
                    audit.Entry(
                        actor.id, actor.role, "enrol", "exists", patient_key=pkey, entity=f"Patient/{existing.id}"
                    )
                ],
            )
            return Enrolled(existing, False, cpr.warnings)
        now = utcnow()
        patient = m.Patient(
            id=secrets.token_hex(8),
            patient_key=pkey,
            pilot=rt.settings.pilot,
            active=True,
            enrolled_at=now,
            enrolled_by=actor.id,
        )
        sealed = seal_identity(Identity(cpr.cpr, name), pkey, rt.keys)
        session.add(patient)
        session.flush()
        conflicts = register_aliases(session, rt.keys, pkey, aliases, actor.id)
        if conflicts:
            raise Invalid(*conflicts)
        session.add(
            m.Identity(
                patient_key=pkey, kid=sealed.kid, nonce=sealed.nonce, ciphertext=sealed.ciphertext, updated_at=now
            )
        )
        audit.append(
            session,
            rt.keys,
            [audit.Entry(actor.id, actor.role, "enrol", "created", patient_key=pkey, entity=f"Patient/{patient.id}")],
        )
        return Enrolled(patient, True, cpr.warnings)


def _consent_patient(session: Session, resource: dict[str, Any]) -> m.Patient:
    reference = str((resource.get("patient") or {}).get("reference") or "")
    patient_id = reference.removeprefix("Patient/")
    patient = (
        session.execute(select(m.Patient).where(m.Patient.id == patient_id)).scalar_one_or_none()
        if reference.startswith("Patient/")
        else None
    )
    if patient is None:
        raise Invalid(
            Issue(
                "error",
                "not-found",
                f"Consent.patient must reference an enrolled patient (Patient/<id>); {reference or 'none'} is not one",
                "Consent.patient",
            )
        )
    return patient


def _parse(resource: dict[str, Any]) -> consent_model.ConsentRecord:
    try:
        return consent_model.parse_consent(resource)
    except consent_model.ConsentError as exc:
        raise Invalid(Issue("error", "invalid", str(exc), getattr(exc, "expression", None))) from None


def _stamp(resource: dict[str, Any], consent_id: str, version: int, when: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    out["id"] = consent_id
    out["meta"] = {**(out.get("meta") or {}), "versionId": str(version), "lastUpdated": from_store(when).isoformat()}
    return out


def record_consent(
    rt: Runtime,
    actor: Principal,
    resource: dict[str, Any],
    consent_id: str | None = None,
    *,
    if_match: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Create (``consent_id`` None) or update a Consent; every version is kept. Takes effect on the next request.
    ``if_match`` is shown the current version of an updated consent (in the updating transaction) and may
    refuse the update by raising."""
    if resource.get("resourceType") != "Consent":
        raise Invalid(
            Issue("error", "structure", f"expected a Consent, got {resource.get('resourceType')!r}", "resourceType")
        )
    if consent_id is not None and resource.get("id") not in (None, consent_id):
        raise Invalid(
            Issue(
                "error",
                "invalid",
                f"the resource id {resource.get('id')!r} does not match the URL id {consent_id!r}",
                "Consent.id",
            )
        )
    record = _parse(resource)
    with rt.sessions.begin() as session:
        patient = _consent_patient(session, resource)
        now = utcnow()
        if consent_id is None:
            row = m.Consent(
                id=secrets.token_hex(8),
                patient_key=patient.patient_key,
                version=1,
                recorded_at=now,
                recorded_by=actor.id,
                status="",
                resource={},
            )
            session.add(row)
        else:
            row = session.get(m.Consent, consent_id)
            if row is None:
                raise Missing(f"Consent/{consent_id} is not known")
            if if_match is not None:
                if_match(row.resource)
            if row.patient_key != patient.patient_key:
                raise Invalid(
                    Issue(
                        "error",
                        "invalid",
                        "a Consent cannot be moved to another patient; record a new one",
                        "Consent.patient",
                    )
                )
            row.version += 1
            row.recorded_at, row.recorded_by = now, actor.id
        stamped = _stamp(resource, row.id, row.version, now)
        row.status, row.resource = str(resource.get("status")), stamped
        # what decisions read (``Decisions._records_of``): the stamped resource's parse is ``record`` with its id
        row.facts = json.dumps(consent_model.facts_of(dataclasses.replace(record, id=row.id)))
        session.flush()
        session.add(
            m.ConsentVersion(
                consent_id=row.id,
                version=row.version,
                status=row.status,
                resource=stamped,
                recorded_at=now,
                recorded_by=actor.id,
            )
        )
        audit.append(
            session,
            rt.keys,
            [
                audit.Entry(
                    actor.id,
                    actor.role,
                    "consent-create" if row.version == 1 else "consent-update",
                    row.status,
                    patient_key=patient.patient_key,
                    entity=f"Consent/{row.id}/_history/{row.version}",
                )
            ],
        )
        return stamped
