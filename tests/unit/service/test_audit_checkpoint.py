"""Signed audit checkpoints: a truncated or rewritten tail is found; a forged checkpoint is refused."""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select, update

from homediag import audit
from homediag.keys import KeyRing
from homediag.runtime import Runtime
from homediag.store.models import AuditEvent, AuditHead


def _log(runtime: Runtime, n: int) -> None:
    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [audit.Entry(f"user-{i}", "clinician", "read", "permit") for i in range(n)])


def test_checkpoint_verifies_while_the_chain_grows(runtime: Runtime) -> None:
    _log(runtime, 3)
    with runtime.sessions() as session:
        doc = audit.checkpoint(session, runtime.keys)
    _log(runtime, 2)
    with runtime.sessions() as session:
        assert audit.verify(session, runtime.keys).ok
        result = audit.verify_checkpoint(session, runtime.keys, json.loads(json.dumps(doc)))
    assert result.ok, result.message
    assert [end[:2] for end in doc["checkpoint"]["streams"]] == [[0, 3]]  # type: ignore[index]


def _head(runtime: Runtime) -> tuple[int, str, str | None]:
    with runtime.sessions() as session:
        head = session.execute(select(AuditHead.seq, AuditHead.hash, AuditHead.mac).where(AuditHead.id == 0)).one()
    return head.seq, head.hash, head.mac


def test_a_removed_newest_record_is_found_even_when_the_head_is_moved_back(runtime: Runtime) -> None:
    _log(runtime, 4)
    # someone with database access removes the newest record
    with runtime.sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.stream_seq == 4))
    with runtime.sessions() as session:
        result = audit.verify(session, runtime.keys)
    assert not result.ok and "removed from the end" in result.message
    # ... and makes the head agree: without the audit key the head's seal no longer matches
    with runtime.sessions.begin() as session:
        third = session.execute(select(AuditEvent.hash).where(AuditEvent.stream_seq == 3)).scalar_one()
        session.execute(update(AuditHead).where(AuditHead.id == 0).values(seq=3, hash=third))
    with runtime.sessions() as session:
        result = audit.verify(session, runtime.keys)
    assert not result.ok and "head is not sealed" in result.message


def test_a_truncated_tail_with_a_replayed_head_is_found_only_with_the_checkpoint(runtime: Runtime) -> None:
    _log(runtime, 3)
    saved = _head(runtime)  # someone with database access keeps a copy of the sealed head
    _log(runtime, 2)
    with runtime.sessions() as session:
        doc = audit.checkpoint(session, runtime.keys)
    # ... later removes the last two records and puts the old sealed head back
    with runtime.sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.stream_seq > 3))
        session.execute(update(AuditHead).where(AuditHead.id == 0).values(seq=saved[0], hash=saved[1], mac=saved[2]))
    with runtime.sessions() as session:
        assert audit.verify(session, runtime.keys).ok  # the chain and its head alone look intact
        result = audit.verify_checkpoint(session, runtime.keys, doc)
    assert not result.ok
    assert "truncated" in result.message and "record 5" in result.message


def test_a_forged_or_foreign_checkpoint_is_refused(runtime: Runtime) -> None:
    _log(runtime, 2)
    with runtime.sessions() as session:
        doc = audit.checkpoint(session, runtime.keys)
        forged = json.loads(json.dumps(doc))
        forged["checkpoint"]["seq"] = 1
        assert "signature" in audit.verify_checkpoint(session, runtime.keys, forged).message
        other = audit.checkpoint(session, KeyRing.generate())
        assert not audit.verify_checkpoint(session, runtime.keys, other).ok
        assert not audit.verify_checkpoint(session, runtime.keys, {"nonsense": True}).ok
        assert session.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 2
