"""CPR numbers, pseudonyms and the identity vault.

- A CPR (``urn:oid:1.2.208.176.1.2``) is ten ASCII digits, ddmmyy + 4, an optional hyphen after the
  sixth, with a valid date. Any other digit form (Arabic-Indic, fullwidth, Devanagari, superscript) is
  refused, never folded: folding would let one person be written many ways. The modulus-11 check is
  only a warning: CPRs issued since 2007 need not pass it.
- ``looks_like_cpr`` is the one test of whether a text holds something that could be a CPR in any
  digit form; whatever it finds is never echoed in an error or written to the audit log in clear.
- The patient key is HMAC-SHA256 of the CPR under the pseudonym key. A bare hash is never used:
  every CPR can be enumerated.
- CPR and name are stored only encrypted (AES-256-GCM), the key id beside each record and the
  patient key bound in as associated data, so a ciphertext cannot be moved to another patient.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from hashlib import sha256

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .keys import Key, KeyRing

CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
_MOD11_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
_CPR_FORM = re.compile(r"([0-9]{6})-?([0-9]{4})", re.ASCII)
# Detection is wider than the rule: any Unicode decimal digit, after compatibility folding (superscripts),
# standing apart from letters and digits (``cpr:0101901234`` and ``cpr_0101901234`` hold one; ten digits
# inside a random hex id or token do not: such ids, ours included, would otherwise be refused now and then)
_CPR_LIKE = re.compile(r"(?<![^\W_])(\d{6})-?(\d{4})(?![^\W_])")
_CPR_APART = re.compile(r"(?<![^\W_])\d{6}-?\d{4}(?![^\W_])")
WITHHELD = "[a value that looks like a CPR number, not repeated]"


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
    """The CPR in its one stored form (ten ASCII digits), or InvalidCpr (whose message never repeats it)."""
    match = _CPR_FORM.fullmatch(value.strip())
    if match is None:
        if looks_like_cpr(value):
            raise InvalidCpr("a CPR number is written with the ASCII digits 0-9 only (ddmmyy-nnnn)")
        raise InvalidCpr("a CPR number is 10 digits (ddmmyy-nnnn)")
    cpr = match[1] + match[2]
    dd, mm, yy, seventh = int(cpr[0:2]), int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    try:
        date(_century(yy, seventh) + yy, mm, dd)
    except ValueError:
        raise InvalidCpr("the first six digits of the CPR number are not a valid date (ddmmyy)") from None
    warnings: tuple[str, ...] = ()
    if sum(int(d) * w for d, w in zip(cpr, _MOD11_WEIGHTS, strict=True)) % 11:
        warnings = ("the CPR number fails the modulus-11 check (valid for CPRs issued since 2007)",)
    return CprCheck(cpr, warnings)


def looks_like_cpr(text: str) -> bool:
    """Whether ``text`` holds ten digits (any script, an optional hyphen after the sixth) whose first six
    are a valid ddmmyy date: something that must not be repeated or stored in clear."""
    folded = unicodedata.normalize("NFKC", text)
    for candidate in {text, folded}:
        for match in _CPR_LIKE.finditer(candidate):
            digits = "".join(str(unicodedata.digit(c)) for c in match[1] + match[2])
            if _valid_date(digits):
                return True
    return False


def said(text: str | None) -> str:
    """How a value a caller gave may be repeated in an answer or the audit log: withheld when it holds ten
    digits in a CPR's shape (any script), standing apart from letters and digits, date or not. Ten digits
    inside a longer hex token (a pseudonym) are not a CPR."""
    if text is None:
        return "None"
    for candidate in (text, unicodedata.normalize("NFKC", text)):
        if _CPR_APART.search(candidate):
            return WITHHELD
    if len(text) > SAID_LENGTH:  # no id of ours is this long: say its start and how long it was
        return f"{text[:64]}… ({len(text)} characters)"
    return text


SAID_LENGTH = 100


def masked(text: str) -> str:
    """``text`` with every CPR-shaped run of digits (any script, standing apart) replaced: for log lines."""
    out = _CPR_APART.sub("[CPR-like]", text)
    folded = unicodedata.normalize("NFKC", out)
    return _CPR_APART.sub("[CPR-like]", folded) if _CPR_APART.search(folded) else out


class NoCprInLogs(logging.Filter):
    """A logging filter that masks CPR-shaped numbers in a record's message and arguments (uvicorn's access
    log writes each request's path: a CPR typed into a URL must not reach the log in clear)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = masked(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(masked(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: masked(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def _valid_date(digits: str) -> bool:
    dd, mm, yy, seventh = int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6])
    try:
        date(_century(yy, seventh) + yy, mm, dd)
    except ValueError:
        return False
    return True


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
