"""Key rotation (``homediag keys rotate``).

- Vault key: every identity record and every sealed upload is re-encrypted under a new key; the old
  key stays in the key file as ``vault_previous`` until an operator removes it.
- Pseudonym key: every patient gets a new patient key (HMAC of the CPR under the new key), moved
  through every table in one transaction, without losing any patient's history; identifier aliases
  get their HMAC recomputed from their sealed values. The audit chain
  is not rewritten (that would break it): one audit record per patient links the old patient key to
  the new one, so an administrator can follow a patient's trail across the rotation.

The new key file is written beside the old one first, the database changed in one transaction, and
only then the new key file put in place; a failure leaves the old keys and the old data as they were.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from . import audit
from .aliases import identifier_hmac, open_alias, seal_alias
from .clock import utcnow
from .identity import SealedIdentity, open_identity, patient_key, seal_identity
from .ingest import open_upload, seal_upload
from .keys import KeyRing, new_key, write_key_file
from .monitoring import persisted
from .runtime import Runtime
from .store import models as m
from .users import Principal


@dataclass(frozen=True)
class RotationReport:
    identities: int = 0
    uploads: int = 0
    patients: int = 0


def rotated_ring(keys: KeyRing, *, vault: bool, pseudonym: bool) -> KeyRing:
    ring = keys
    if vault:
        ring = replace(ring, vault=new_key("vault"), vault_previous=(keys.vault, *keys.vault_previous))
    if pseudonym:
        ring = replace(ring, pseudonym=new_key("pseudonym"))
    return ring


def _reseal(session: Session, rt: Runtime, new: KeyRing, key_map: dict[str, str]) -> tuple[int, int]:
    """Re-encrypt the vault and the upload log under ``new`` (and under each patient's new key)."""
    identities = 0
    for row in session.execute(select(m.Identity)).scalars().all():
        ident = open_identity(SealedIdentity(row.kid, row.nonce, row.ciphertext), row.patient_key, rt.keys)
        target = key_map.get(row.patient_key, row.patient_key)
        sealed = seal_identity(ident, target, new)
        session.execute(
            update(m.Identity)
            .where(m.Identity.patient_key == row.patient_key)
            .values(kid=sealed.kid, nonce=sealed.nonce, ciphertext=sealed.ciphertext, updated_at=utcnow())
        )
        identities += 1
    for alias in session.execute(select(m.PatientAlias)).scalars().all():
        value = open_alias(rt.keys, alias)
        kid, nonce, sealed = seal_alias(new, alias.system, value)
        session.execute(
            update(m.PatientAlias)
            .where(m.PatientAlias.system == alias.system, m.PatientAlias.value_hmac == alias.value_hmac)
            .values(value_hmac=identifier_hmac(alias.system, value, new.pseudonym), kid=kid, nonce=nonce, sealed=sealed)
        )
    uploads = 0
    for upload in session.execute(select(m.Upload)).scalars().all():
        if upload.kid == new.vault.kid:
            continue
        upload.kid, upload.nonce, upload.sealed = seal_upload(new, open_upload(rt, upload), upload.id)
        uploads += 1
    return identities, uploads


def _move_patient(session: Session, old: str, new: str) -> None:
    """Give one patient a new patient key in every table (no foreign key is left dangling)."""
    patient = session.execute(select(m.Patient).where(m.Patient.patient_key == old)).scalar_one()
    public_id = patient.id
    staging = f"rotating-{secrets.token_hex(6)}"
    session.add(
        m.Patient(
            id=staging,
            patient_key=new,
            pilot=patient.pilot,
            active=patient.active,
            enrolled_at=patient.enrolled_at,
            enrolled_by=patient.enrolled_by,
        )
    )
    session.flush()
    for table in (
        m.Identity,
        m.Consent,
        m.Observation,
        m.ObservationDedup,
        m.Upload,
        m.PatientAlias,
        m.CareTeamPatient,
        m.GatewayPatient,
        m.MonitoringSettings,
        m.Review,
        m.ReviewItem,
    ):
        session.execute(update(table).where(table.patient_key == old).values(patient_key=new))
    session.execute(delete(m.Patient).where(m.Patient.id == public_id))
    session.flush()
    session.execute(update(m.Patient).where(m.Patient.id == staging).values(id=public_id))


def rotate(rt: Runtime, actor: Principal, key_file: Path, *, vault: bool, pseudonym: bool) -> RotationReport:
    if not (vault or pseudonym):
        raise ValueError("say what to rotate: --vault, --pseudonym or both")
    new = rotated_ring(rt.keys, vault=vault, pseudonym=pseudonym)
    staged = key_file.with_name(key_file.name + ".new")
    if staged.exists():
        staged.unlink()
    write_key_file(staged, new)
    try:
        with rt.sessions.begin() as session:
            key_map: dict[str, str] = {}
            if pseudonym:
                for row in session.execute(select(m.Identity)).scalars().all():
                    ident = open_identity(SealedIdentity(row.kid, row.nonce, row.ciphertext), row.patient_key, rt.keys)
                    key_map[row.patient_key] = patient_key(ident.cpr, new.pseudonym)
            identities, uploads = _reseal(session, rt, new, key_map)
            for old, fresh in key_map.items():
                _move_patient(session, old, fresh)
            persisted.prune_orphans(session)  # the old keys' kept values, triages, shapes and worklist parts
            entries = [
                audit.Entry(
                    actor.id, actor.role, "pseudonym-rotated", "done", patient_key=old, entity=f"patient-key/{fresh}"
                )
                for old, fresh in key_map.items()
            ]
            entries.append(
                audit.Entry(
                    actor.id,
                    actor.role,
                    "keys-rotated",
                    "done",
                    detail=f"vault={vault} pseudonym={pseudonym}; {identities} identities and {uploads} uploads"
                    f" re-sealed, {len(key_map)} patient keys moved",
                )
            )
            audit.append(session, rt.keys, entries)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, key_file)
    rt.keys = new
    rt.consent_cache.clear()
    return RotationReport(identities, uploads, len(key_map))
