"""Verifying the audit chains (``homediag audit verify``) and signed checkpoints of where they end
(``homediag audit checkpoint``, ``verify_checkpoint``). See ``homediag.audit``."""

from __future__ import annotations

import base64
import hmac
import json
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from .audit_chain import GENESIS, _digest, _head_mac
from .clock import utcnow
from .keys import KeyRing
from .store.models import AuditEvent, AuditHead


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    message: str
    broken_at: int | None = None  # the place, in its stream, of the first record found wrong
    stream: int = 0


def _record(place: int, stream: int) -> str:
    return f"record {place}" if stream == 0 else f"record {place} of stream {stream}"


def verify(session: Session, keys: KeyRing) -> VerifyResult:
    """Walk each stream's chain from its start, then its head: report the first record that does not follow
    from its predecessor, or a chain that does not reach its sealed head."""
    secret, checked = keys.audit.secret, 0
    heads = {h.id: h for h in session.execute(select(AuditHead)).scalars()}
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.stream, AuditEvent.stream_seq)).scalars()
    stream: int | None = None
    prev, expected = GENESIS, 1
    for row in rows:
        if row.stream != stream:
            if stream is not None and (broken := _check_head(heads.pop(stream, None), secret, stream, expected, prev)):
                return replace(broken, checked=checked)
            stream, prev, expected = row.stream, GENESIS, 1
        where = _record(row.stream_seq, stream)
        if row.stream_seq != expected:
            message = f"{_record(expected, stream)} is missing (next record is {row.stream_seq})"
            return VerifyResult(False, checked, message, expected, stream)
        if row.prev_hash != prev:
            return VerifyResult(
                False, checked, f"{where} does not link to record {row.stream_seq - 1}", row.stream_seq, stream
            )
        if row.kid != keys.audit.kid:
            return VerifyResult(
                False, checked, f"{where} was sealed with unknown audit key {row.kid!r}", row.stream_seq, stream
            )
        if not hmac.compare_digest(
            _digest(secret, prev, row.seq, row.at, row, row.kid, stream, row.stream_seq), row.hash
        ):
            message = f"{where} was altered (its hash does not match its content, stream or place)"
            return VerifyResult(False, checked, message, row.stream_seq, stream)
        prev, expected, checked = row.hash, expected + 1, checked + 1
    if stream is not None and (broken := _check_head(heads.pop(stream, None), secret, stream, expected, prev)):
        return replace(broken, checked=checked)
    for head_id, head in sorted(heads.items()):  # streams without records: their heads must say so
        if broken := _check_head(head, secret, head_id, 1, GENESIS):
            return replace(broken, checked=checked)
    return VerifyResult(True, checked, f"audit chain intact: {checked} records")


def _check_head(head: AuditHead | None, secret: bytes, stream: int, expected: int, prev: str) -> VerifyResult | None:
    """Whether a stream's chain, ending before place ``expected`` with hash ``prev``, reaches its sealed head."""
    chain = "the chain's" if stream == 0 else f"stream {stream}'s"
    if head is None:
        return VerifyResult(
            False, 0, f"{chain} head is missing: records may have been removed from the end", expected, stream
        )
    if head.mac is None or not hmac.compare_digest(_head_mac(secret, stream, head.seq, head.hash), head.mac):
        return VerifyResult(
            False,
            0,
            f"{chain} head is not sealed by this installation's audit key: it was altered"
            " (a deployment upgraded from before 0005 has an unsealed head until its next audited action)",
            head.seq + 1,
            stream,
        )
    if head.seq != expected - 1 or head.hash != prev:
        return VerifyResult(
            False,
            0,
            f"{chain} records end at record {expected - 1} but its head says {head.seq}:"
            " records were removed from the end",
            expected,
            stream,
        )
    return None


# -- signed checkpoints ------------------------------------------------------------------------
# A checkpoint records each stream's last record (its place and hash), signed with Ed25519. Kept outside
# the database, it shows a truncated tail: records removed from the end of a stream leave a consistent
# chain, but not one that reaches the checkpoint. The signing key is derived from the audit key (HKDF), so
# it lives where the audit key lives; the public key goes with each checkpoint for third parties.
_CHECKPOINT_INFO = b"homediag audit checkpoint signing key v1"


def _signing_key(keys: KeyRing) -> Ed25519PrivateKey:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CHECKPOINT_INFO).derive(keys.audit.secret)
    return Ed25519PrivateKey.from_private_bytes(derived)


def _canonical(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def checkpoint(session: Session, keys: KeyRing) -> dict[str, object]:
    """A signed statement of where each stream's chain ends now (``homediag audit checkpoint``); ``seq`` is the
    newest record's id, for people."""
    last = (
        select(AuditEvent.stream, func.max(AuditEvent.stream_seq).label("place")).group_by(AuditEvent.stream).subquery()
    )
    ends = session.execute(
        select(AuditEvent.stream, AuditEvent.stream_seq, AuditEvent.hash)
        .join(last, and_(AuditEvent.stream == last.c.stream, AuditEvent.stream_seq == last.c.place))
        .order_by(AuditEvent.stream)
    ).all()
    newest = session.execute(select(func.max(AuditEvent.seq))).scalar_one_or_none() or 0
    payload: dict[str, object] = {
        "seq": newest,
        "streams": [[e.stream, e.stream_seq, e.hash] for e in ends],
        "at": utcnow().isoformat() + "Z",
        "kid": keys.audit.kid,
    }
    key = _signing_key(keys)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "checkpoint": payload,
        "signature": base64.b64encode(key.sign(_canonical(payload))).decode(),
        "algorithm": "Ed25519",
        "public_key": base64.b64encode(public).decode(),
    }


def _checkpoint_ends(payload: dict[str, Any]) -> list[tuple[int, int, str]]:
    """Each stream's last place and hash in a checkpoint; one made before 0007 holds the one chain's (stream 0)."""
    if "streams" not in payload:
        return [(0, int(payload["seq"]), str(payload["hash"]))]
    return [(int(s), int(n), str(h)) for s, n, h in payload["streams"]]


def verify_checkpoint(session: Session, keys: KeyRing, document: dict[str, object]) -> VerifyResult:
    """Whether every stream still reaches a checkpoint made earlier, unchanged. Run after ``verify``."""
    try:
        payload = document["checkpoint"]
        signature = base64.b64decode(str(document["signature"]), validate=True)
        assert isinstance(payload, dict)
        ends = _checkpoint_ends(payload)
    except (KeyError, ValueError, TypeError, AssertionError):
        return VerifyResult(False, 0, "the checkpoint file is not a homediag audit checkpoint")
    try:
        _signing_key(keys).public_key().verify(signature, _canonical(payload))
    except InvalidSignature:
        return VerifyResult(
            False,
            0,
            "the checkpoint's signature does not verify with this installation's audit key:"
            " it was altered or made elsewhere",
        )
    at, reached = payload.get("at"), 0
    for stream, place, digest in ends:
        if place == 0:
            continue
        found = session.execute(
            select(AuditEvent.hash).where(AuditEvent.stream == stream, AuditEvent.stream_seq == place)
        ).scalar_one_or_none()
        if found is None:
            last = session.execute(
                select(func.max(AuditEvent.stream_seq)).where(AuditEvent.stream == stream)
            ).scalar_one_or_none()
            last = last or 0
            return VerifyResult(
                False,
                reached,
                f"the chain was truncated: the checkpoint of {at} saw {_record(place, stream)},"
                f" the {'chain' if stream == 0 else f'stream {stream}'} now ends at record {last}",
                last + 1,
                stream,
            )
        if not hmac.compare_digest(found, digest):
            return VerifyResult(
                False,
                reached,
                f"{_record(place, stream)} is not the one the checkpoint of {at} saw: the chain was rewritten",
                place,
                stream,
            )
        reached += place
    if not reached:
        return VerifyResult(True, 0, "checkpoint of an empty chain: nothing to compare")
    return VerifyResult(
        True, reached, f"the chains reach the checkpoint of {at} ({reached} records in {len(ends)} streams) unchanged"
    )
