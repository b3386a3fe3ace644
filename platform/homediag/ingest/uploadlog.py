"""The upload log: what a gateway sent, kept whatever happens next.

The body is sealed under the vault key (it holds a CPR) and bound to its upload id; beside it a
redacted copy for display (the front says how to redact what it takes), made storable by
``bodies.readable`` (PostgreSQL cannot hold a NUL, and no store a lone surrogate: they are written as
visible escapes; the sealed body keeps the bytes as sent). ``open_upload`` gives an
administrator the body back byte for byte.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.orm import Session

from homediag.bodies import escape_text, readable
from homediag.clock import utcnow
from homediag.keys import KeyRing
from homediag.runtime import Runtime
from homediag.store import models as m
from homediag.store.repositories import uploads
from homediag.users import Principal


def seal_upload(keys: KeyRing, raw: bytes, upload_id: str) -> tuple[str, bytes, bytes]:
    """Encrypt what a gateway sent under the vault key (it holds a CPR), bound to its upload id."""
    nonce = os.urandom(12)
    return keys.vault.kid, nonce, AESGCM(keys.vault.secret).encrypt(nonce, raw, upload_id.encode())


def open_upload(rt: Runtime, upload: m.Upload) -> bytes:
    """The body exactly as the gateway sent it (for an administrator investigating an upload)."""
    key = rt.keys.vault_key(upload.kid)
    return AESGCM(key.secret).decrypt(upload.nonce, upload.sealed, upload.id.encode())


def new_upload(
    session: Session, keys: KeyRing, sender: Principal, body: bytes, *, adapter: str | None, redacted: Any
) -> m.Upload:
    """A ``pending`` upload holding ``body`` sealed and its ``redacted`` copy."""
    upload_id = str(uuid.uuid4())
    return uploads.add(
        session,
        upload_id=upload_id,
        received_at=utcnow(),
        sender=sender.id,
        adapter=escape_text(adapter) if adapter is not None else None,
        sealed=seal_upload(keys, body, upload_id),
        redacted=readable(redacted),
    )
