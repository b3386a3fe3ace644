"""Patient reads: who the patient is, as far as the reader may know."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from homediag import versions
from homediag.errors import Forbidden, NotFound
from homediag.fhir_profiles.profiles import CANONICAL
from homediag.identity import CPR_SYSTEM, SealedIdentity, open_identity, said
from homediag.store import models as m
from homediag.users import Principal

from .decisions import Decisions
from .view import ROLE_PURPOSES


def _said(patient_id: str | None) -> str:
    """How an id the reader gave may be repeated in an answer or the audit log (never a CPR-like id)."""
    return said(patient_id)


class PatientReads(Decisions):
    def read_patient(
        self, principal: Principal, patient_id: str, *, purpose: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Who the patient is, as far as the reader may know.

        A clinician whose patient's consent permits treatment gets the identity (CPR and name) only with
        a stated reason, which is audited as a re-identification; without one, the record without
        identity. Evaluators and vendors get the patient's pseudonym of their domain; admins the
        record without identity. Anyone else: 403.
        """
        if principal.role == "admin":
            view = None
        elif principal.role in ROLE_PURPOSES:
            view = self.view(principal, purpose)
        else:
            raise Forbidden(f"the role '{principal.role}' may not read patients")
        real_id = view.real_id("Patient", patient_id) if view else patient_id
        entity = f"Patient/{_said(real_id)}"
        # NotFound is raised after the transaction commits: raised inside it, the deny audit would roll back.
        with self.rt.sessions.begin() as session:
            patient = (
                session.execute(select(m.Patient).where(m.Patient.id == real_id)).scalar_one_or_none()
                if real_id
                else None
            )
            pkey = patient.patient_key if patient else None
            resource: dict[str, Any] = {
                "resourceType": "Patient",
                "id": real_id,
                "active": bool(patient and patient.active),
            }
            if view is None:
                outcome = "permit" if patient else "deny"
                self._audit(
                    session, principal, "read", outcome, patient_key=pkey, entity=entity, detail="no identity disclosed"
                )
                permit = patient is not None
            else:
                decision = self._decide_for(session, view, pkey, None) if pkey else None
                permit = bool(decision and decision.permit)
                asks_identity = view.domain is None and bool(reason)
                identify = permit and asks_identity
                detail = (decision.reason if decision is not None else "no such patient") + (
                    f"; reason: {reason}" if identify else ""
                )
                self._audit(
                    session,
                    principal,
                    "re-identify" if asks_identity else "read",
                    "permit" if permit else "deny",
                    purpose=view.purpose,
                    patient_key=pkey,
                    entity=entity,
                    detail=detail,
                )
                vault = session.get(m.Identity, pkey) if identify else None
                if vault is not None and pkey is not None:
                    ident = open_identity(SealedIdentity(vault.kid, vault.nonce, vault.ciphertext), pkey, self.rt.keys)
                    resource["identifier"] = [{"system": CPR_SYSTEM, "value": ident.cpr}]
                    if ident.name:
                        resource["name"] = [ident.name]
                elif permit and view.domain is None:
                    resource["meta"] = {
                        "tag": [
                            {
                                "system": f"{CANONICAL}/CodeSystem/disclosure",
                                "code": "identity-withheld",
                                "display": "identity is shown with a stated reason (X-Reidentification-Reason)",
                            }
                        ]
                    }
        if patient is None or not permit:
            raise NotFound.resource("Patient", _said(patient_id))
        resource = versions.stamp(resource, 1, patient.enrolled_at)  # a record is never changed after enrolment
        return view.shown(resource) if view else resource

    def read_patient_version(
        self,
        principal: Principal,
        patient_id: str,
        version: str,
        *,
        purpose: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """vread: the record has one version (1); decided and audited as a read."""
        current = self.read_patient(principal, patient_id, purpose=purpose, reason=reason)
        if version != current["meta"]["versionId"]:
            raise NotFound(f"Patient/{_said(patient_id)} has no version {version[:20]} (only version 1)")
        return current
