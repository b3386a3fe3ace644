"""CPR numbers, pseudonyms and the identity vault.

- A CPR (``urn:oid:1.2.208.176.1.2``) is ddmmyy + 4 digits with a valid date. The modulus-11 check
  is only a warning: CPRs issued since 2007 need not pass it.
- The patient key is HMAC-SHA256 of the CPR under the pseudonym key. A bare hash is never used:
  every CPR can be enumerated.
- CPR and name are stored only encrypted (AES-256-GCM), the key id beside each record and the
  patient key bound in as associated data, so a ciphertext cannot be moved to another patient.
"""

from __future__ import annotations

import hmac
import json
import os
from dataclasses import dataclass
from datetime import date
from hashlib import sha256

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .keys import Key, KeyRing

CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
_MOD11_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


class InvalidCpr(ValueError):
    """A malformed CPR. Its message never repeats the number."""


@dataclass(frozen=True)
class CprCheck:
    cpr: str
    warnings: tuple[str, ...]


def _century(yy: int, seventh: int) -> int:
    """The century of a CPR's birth year from its 7th digit (CPR office rules)."""
    if seventh <= 3:
        return 1900
    if seventh in (4, 9):
        return 2000 if yy <= 36 else 1900
    return 2000 if yy <= 57 else 1800


def check_cpr(value: str) -> CprCheck:
    cpr = value.replace("-", "").strip()
    if len(cpr) != 10 or not cpr.isdigit():
        raise InvalidCpr("a CPR number is 10 digits (ddmmyy-nnnn)")
    dd, mm, yy, seventh = int(cpr[0:2]), int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    try:
        date(_century(yy, seventh) + yy, mm, dd)
    except ValueError:
        raise InvalidCpr("the first six digits of the CPR number are not a valid date (ddmmyy)") from None
    warnings: tuple[str, ...] = ()
    if sum(int(d) * w for d, w in zip(cpr, _MOD11_WEIGHTS, strict=True)) % 11:
        warnings = ("the CPR number fails the modulus-11 check (valid for CPRs issued since 2007)",)
    return CprCheck(cpr, warnings)


def patient_key(cpr: str, key: Key) -> str:
    return hmac.new(key.secret, f"{CPR_SYSTEM}|{cpr}".encode(), sha256).hexdigest()


@dataclass(frozen=True)
class SealedIdentity:
    kid: str
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class Identity:
    cpr: str
    name: dict[str, object] | None


def seal_identity(identity: Identity, pkey: str, keys: KeyRing) -> SealedIdentity:
    nonce = os.urandom(12)
    plaintext = json.dumps({"cpr": identity.cpr, "name": identity.name}).encode()
    ciphertext = AESGCM(keys.vault.secret).encrypt(nonce, plaintext, pkey.encode())
    return SealedIdentity(keys.vault.kid, nonce, ciphertext)


def open_identity(sealed: SealedIdentity, pkey: str, keys: KeyRing) -> Identity:
    key = keys.vault_key(sealed.kid)
    data = json.loads(AESGCM(key.secret).decrypt(sealed.nonce, sealed.ciphertext, pkey.encode()))
    return Identity(cpr=data["cpr"], name=data.get("name"))
