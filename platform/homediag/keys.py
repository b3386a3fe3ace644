"""The secret keys: pseudonym key, vault (identity encryption) key, audit chain key.

They live in a key file made by ``homediag keys init`` (mode 0600) or in ``HOMEDIAG_KEYS_JSON``,
never in the database or the repository. Each key has an id, stored beside whatever it protects,
so that a later rotation can tell old from new.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings

KEY_BYTES = 32


class KeyError_(RuntimeError):
    """The keys are missing or malformed; the message says how to make them."""


@dataclass(frozen=True)
class Key:
    kid: str
    secret: bytes


@dataclass(frozen=True)
class KeyRing:
    pseudonym: Key
    vault: Key
    audit: Key
    vault_previous: tuple[Key, ...] = ()

    def vault_key(self, kid: str) -> Key:
        for key in (self.vault, *self.vault_previous):
            if key.kid == kid:
                return key
        raise KeyError_(f"no vault key with id {kid!r} in the key file")

    def to_json(self) -> str:
        def enc(k: Key) -> dict[str, str]:
            return {"kid": k.kid, "key": base64.b64encode(k.secret).decode()}

        data = {"pseudonym": enc(self.pseudonym), "vault": enc(self.vault), "audit": enc(self.audit)}
        if self.vault_previous:
            data["vault_previous"] = [enc(k) for k in self.vault_previous]  # type: ignore[assignment]
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str, source: str) -> KeyRing:
        try:
            data = json.loads(text)

            def dec(d: dict[str, str]) -> Key:
                secret = base64.b64decode(d["key"], validate=True)
                if len(secret) != KEY_BYTES:
                    raise ValueError(f"key {d.get('kid')!r} is {len(secret)} bytes, not {KEY_BYTES}")
                return Key(str(d["kid"]), secret)

            return cls(
                pseudonym=dec(data["pseudonym"]),
                vault=dec(data["vault"]),
                audit=dec(data["audit"]),
                vault_previous=tuple(dec(k) for k in data.get("vault_previous", [])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyError_(f"{source}: not a valid homediag key file ({exc})") from None

    @classmethod
    def generate(cls) -> KeyRing:
        return cls(pseudonym=new_key("pseudonym"), vault=new_key("vault"), audit=new_key("audit"))


def new_key(kind: str) -> Key:
    """A fresh random key with an id that names its kind."""
    return Key(f"{kind}-{secrets.token_hex(4)}", secrets.token_bytes(KEY_BYTES))


def write_key_file(path: Path, ring: KeyRing, *, overwrite: bool = False) -> None:
    """Write the key file readable by its owner only; refuse to replace keys unless asked."""
    if path.exists() and not overwrite:
        raise KeyError_(f"{path} exists; its keys protect stored data, so it is not replaced")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.to_json())
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def load_keys(settings: Settings) -> KeyRing:
    if settings.keys_json:
        return KeyRing.from_json(settings.keys_json, "HOMEDIAG_KEYS_JSON")
    path = settings.key_file
    if not path.exists():
        raise KeyError_(f"no key file at {path}: run `homediag keys init` (or set HOMEDIAG_KEYS_JSON)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyError_(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    return KeyRing.from_json(path.read_text(), str(path))
