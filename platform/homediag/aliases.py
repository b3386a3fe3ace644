"""Patient identifier aliases: identifiers of an enrolled patient other than its CPR (a hospital MRN a PHD
gateway sends), kept as an HMAC under the pseudonym key with the value sealed under the vault key (so
that a pseudonym-key rotation can recompute the HMAC); never an identifier in clear."""

from __future__ import annotations

import hmac
import os
from hashlib import sha256
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

from homediag.fhir_profiles import Issue

from .clock import utcnow
from .identity import CPR_SYSTEM, check_cpr, patient_key
from .keys import Key, KeyRing
from .store import models as m
from .store.repositories import aliases as repo


def identifier_hmac(system: str, value: str, key: Key) -> str:
    """HMAC-SHA256 of ``system|value`` under the pseudonym key (for the CPR system: the patient key)."""
    return hmac.new(key.secret, f"{system}|{value}".encode(), sha256).hexdigest()


def alias_identifiers(resource: dict[str, Any]) -> tuple[list[tuple[str, str]], list[Issue]]:
    """The identifiers of a Patient to enrol that are not its CPR: each becomes an alias."""
    aliases: list[tuple[str, str]] = []
    issues: list[Issue] = []
    for n, ident in enumerate(resource.get("identifier") or []):
        if not isinstance(ident, dict) or ident.get("system") == CPR_SYSTEM:
            continue
        system, value = ident.get("system"), ident.get("value")
        if not (isinstance(system, str) and system and isinstance(value, str) and value):
            issues.append(
                Issue(
                    "error",
                    "required",
                    "an identifier besides the CPR is registered as an alias of the patient and needs a system"
                    " and a value",
                    f"Patient.identifier[{n}]",
                )
            )
        elif len(system) > 200:
            issues.append(
                Issue(
                    "error",
                    "value",
                    "an alias identifier's system is at most 200 characters",
                    f"Patient.identifier[{n}].system",
                )
            )
        else:
            aliases.append((system, value))
    return aliases, issues


def seal_alias(keys: KeyRing, system: str, value: str) -> tuple[str, bytes, bytes]:
    """The alias value encrypted under the vault key (bound to its system), for a later pseudonym-key rotation."""
    nonce = os.urandom(12)
    return keys.vault.kid, nonce, AESGCM(keys.vault.secret).encrypt(nonce, value.encode(), system.encode())


def open_alias(keys: KeyRing, row: m.PatientAlias) -> str:
    return AESGCM(keys.vault_key(row.kid).secret).decrypt(row.nonce, row.sealed, row.system.encode()).decode()


def register_aliases(
    session: Session, keys: KeyRing, pkey: str, aliases: list[tuple[str, str]], actor: str
) -> list[Issue]:
    """Register ``aliases`` (system, value) for the patient ``pkey``; an alias of another patient is an error."""
    issues: list[Issue] = []
    for system, value in aliases:
        digest = identifier_hmac(system, value, keys.pseudonym)
        existing = repo.get(session, system, digest)
        if existing is None:
            kid, nonce, sealed = seal_alias(keys, system, value)
            repo.add(
                session,
                m.PatientAlias(
                    system=system,
                    value_hmac=digest,
                    patient_key=pkey,
                    kid=kid,
                    nonce=nonce,
                    sealed=sealed,
                    created_at=utcnow(),
                    created_by=actor,
                ),
            )
        elif existing.patient_key != pkey:
            issues.append(
                Issue(
                    "error",
                    "duplicate",
                    f"the identifier with system {system} is already registered for another patient",
                    "Patient.identifier",
                )
            )
    session.flush()
    return issues


def lookup_patient_key(session: Session, keys: KeyRing, system: str, value: str) -> str | None:
    """The patient key an identifier names: the CPR's HMAC, or the patient of a registered alias (None: unknown).
    Raises InvalidCpr for a malformed CPR."""
    if system == CPR_SYSTEM:
        return patient_key(check_cpr(value).cpr, keys.pseudonym)
    row = repo.get(session, system, identifier_hmac(system, value, keys.pseudonym))
    return row.patient_key if row is not None else None
