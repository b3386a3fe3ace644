"""Pseudonym domains: what a reader outside care sees instead of the platform's own ids.

Each evaluator and vendor organisation has its own domain, keyed by HKDF from the pseudonym key and
the domain's name. Ids are encrypted deterministically with AES-SIV under the domain key: the same
patient always has the same pseudonym in one domain (an evaluator can follow a patient through an
export), pseudonyms of two domains cannot be linked without the key, and the platform can turn a
pseudonym back into its id when the reader asks for it. The internal patient key is never shown.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .keys import KeyRing

_HEX = re.compile(r"^(?:[0-9a-f]{2}){1,16}$")
MAX_TEXT_ID = 16  # bytes: a FHIR id is at most 64 characters, and the ciphertext is 16 bytes longer, in hex
MAX_SHIFT = timedelta(days=60)  # a pseudonymous reader's times are shifted by at most this much, either way


class NotAPseudonym(ValueError):
    """A token that this domain did not make."""


@dataclass(frozen=True)
class Domain:
    name: str
    key: bytes  # AES-SIV, 64 bytes
    shift_key: bytes = field(default=b"", repr=False)  # HMAC key of the time shift; empty: no shift

    def offset(self, patient_id: str) -> timedelta:
        """The shift of every time of this patient in this domain: whole seconds in [-MAX_SHIFT, MAX_SHIFT],
        never zero. Zero when the domain has no shift key."""
        if not self.shift_key:
            return timedelta(0)
        span = int(MAX_SHIFT.total_seconds())
        draw = int.from_bytes(hmac.new(self.shift_key, f"time-shift|{patient_id}".encode(), sha256).digest()[:8])
        seconds = draw % (2 * span) - span
        return timedelta(seconds=seconds or span)

    def _siv(self) -> AESSIV:
        return _cipher(self.key)

    def pseudonym(self, kind: str, real_id: str) -> str:
        """The domain's pseudonym for ``kind``/``real_id`` (hex ids are packed as bytes to stay short)."""
        if _HEX.match(real_id):
            plain, form = bytes.fromhex(real_id), "hex"
        else:
            plain, form = real_id.encode(), "text"
            if len(plain) > MAX_TEXT_ID:
                raise ValueError(f"{kind} id {real_id!r} is too long for a pseudonym")
        return self._siv().encrypt(plain, [kind.encode(), form.encode()]).hex()

    def token(self, kind: str, real_id: str) -> str:
        """A one-way stand-in for an id too long to pseudonymise (HMAC-SHA256 under the domain key, 48 hex
        digits): stable in the domain, not resolvable, never the id or a bare hash of it."""
        return hmac.new(self.key, f"token|{kind}|{real_id}".encode(), sha256).hexdigest()[:48]

    def resolve(self, kind: str, pseudonym: str) -> str:
        """The real id behind a pseudonym of this domain, or NotAPseudonym."""
        try:
            data = bytes.fromhex(pseudonym)
        except ValueError:
            raise NotAPseudonym(pseudonym) from None
        for form in ("hex", "text"):
            try:
                plain = self._siv().decrypt(data, [kind.encode(), form.encode()])
            except (InvalidTag, ValueError):
                continue
            return plain.hex() if form == "hex" else plain.decode()
        raise NotAPseudonym(pseudonym)


@lru_cache(maxsize=256)
def _cipher(key: bytes) -> AESSIV:
    """The AES-SIV of a domain key, made once: its key schedule costs as much as encrypting an id (an export
    pseudonymises a million)."""
    return AESSIV(key)


@lru_cache(maxsize=256)
def _derive(secret: bytes, name: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=64, salt=None, info=f"homediag pseudonym domain v1:{name}".encode()
    ).derive(secret)


@lru_cache(maxsize=256)
def _derive_shift(secret: bytes, name: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"homediag time shift v1:{name}".encode()).derive(
        secret
    )


def domain_for(keys: KeyRing, name: str) -> Domain:
    return Domain(name, _derive(keys.pseudonym.secret, name), _derive_shift(keys.pseudonym.secret, name))
