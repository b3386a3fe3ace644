"""Several audit chains (streams) on PostgreSQL: a writer that finds a stream's head held appends to another,
and ``audit verify`` and the signed checkpoint still find every edit, deletion, reordering and truncation,
in any stream, and a record moved between streams. The chain of a store from before 0007 verifies unchanged
as stream 0 after the migration, and the migration goes down again."""

from __future__ import annotations

import hmac
import json
from datetime import datetime
from hashlib import sha256
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, delete, inspect, select, text, update

from homediag import audit
from homediag.keys import KeyRing
from homediag.runtime import Runtime
from homediag.settings import Settings
from homediag.store.database import alembic_config, make_engine, session_factory, upgrade
from homediag.store.models import AuditEvent, AuditHead

on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _entry(actor: str) -> audit.Entry:
    return audit.Entry(actor, "gateway", "ingest", "created", entity="Observation")


def _two_streams(runtime: Runtime) -> None:
    """Records in streams 0 and 1: while one transaction holds stream 0's head, another appends and commits."""
    with runtime.sessions.begin() as session:  # the heads exist, as on any installation that has audited once
        audit.open_head(session, runtime.keys, range(audit.STREAMS))
    holder = runtime.sessions()
    holder.begin()
    audit.append(holder, runtime.keys, [_entry("held-1"), _entry("held-2")])
    audit.write_pending(holder)  # stream 0's head is locked from here to the commit
    with runtime.sessions.begin() as other:  # does not wait: it takes the next free stream
        audit.append(other, runtime.keys, [_entry("other-1"), _entry("other-2"), _entry("other-3")])
    holder.commit()
    holder.close()


def _placed(runtime: Runtime) -> list[tuple[int, int, str]]:
    with runtime.sessions() as session:
        rows = session.execute(select(AuditEvent.stream, AuditEvent.stream_seq, AuditEvent.actor)).all()
    return sorted((r.stream, r.stream_seq, r.actor) for r in rows)


def _verify(runtime: Runtime) -> audit.VerifyResult:
    with runtime.sessions() as session:
        return audit.verify(session, runtime.keys)


@on_postgresql
def test_a_writer_that_finds_the_head_held_appends_to_another_stream_and_both_verify(runtime: Runtime) -> None:
    _two_streams(runtime)
    assert _placed(runtime) == [
        (0, 1, "held-1"),
        (0, 2, "held-2"),
        (1, 1, "other-1"),
        (1, 2, "other-2"),
        (1, 3, "other-3"),
    ]
    result = _verify(runtime)
    assert result.ok and result.checked == 5, result.message
    with runtime.sessions() as session:
        doc = audit.checkpoint(session, runtime.keys)
    assert [end[:2] for end in doc["checkpoint"]["streams"]] == [[0, 2], [1, 3]]  # type: ignore[index]


@on_postgresql
@pytest.mark.parametrize(
    ("tamper", "says", "broken_at"),
    [
        (
            "update audit_event set detail = 'x' where stream = 1 and stream_seq = 2",
            "record 2 of stream 1 was altered",
            2,
        ),
        ("delete from audit_event where stream = 1 and stream_seq = 2", "record 2 of stream 1 is missing", 2),
        ("delete from audit_event where stream = 1 and stream_seq = 3", "stream 1's records end at record 2", 3),
        # two records' contents swapped within a stream (their order exchanged)
        (
            "update audit_event set actor = case actor when 'other-1' then 'other-2' else 'other-1' end"
            " where stream = 1 and stream_seq in (1, 2)",
            "record 1 of stream 1 was altered",
            1,
        ),
        # the newest record of stream 0 moved to the end of stream 1, heads left as they were
        ("update audit_event set stream = 1, stream_seq = 4 where stream = 0 and stream_seq = 2", "its head says 2", 2),
    ],
)
def test_every_kind_of_tampering_in_any_stream_is_found(
    runtime: Runtime, tamper: str, says: str, broken_at: int
) -> None:
    _two_streams(runtime)
    with runtime.engine.begin() as conn:
        assert conn.execute(text(tamper)).rowcount >= 1
    result = _verify(runtime)
    assert not result.ok
    assert says in result.message
    assert result.broken_at == broken_at


@on_postgresql
def test_a_record_moved_to_another_stream_with_its_heads_made_to_agree_is_found(runtime: Runtime) -> None:
    """Without the audit key the heads cannot be resealed; even so the moved record's hash binds its stream."""
    _two_streams(runtime)
    with runtime.sessions.begin() as session:
        last = session.execute(
            select(AuditEvent).where(AuditEvent.stream == 1, AuditEvent.stream_seq == 3)
        ).scalar_one()
        session.execute(delete(AuditEvent).where(AuditEvent.stream == 1, AuditEvent.stream_seq == 3))
        session.flush()
        session.execute(
            AuditEvent.__table__.insert().values(
                seq=last.seq, stream=0, stream_seq=3, at=last.at, actor=last.actor, role=last.role,
                action=last.action, entity=last.entity, outcome=last.outcome, kid=last.kid,
                prev_hash=session.execute(
                    select(AuditEvent.hash).where(AuditEvent.stream == 0, AuditEvent.stream_seq == 2)
                ).scalar_one(),
                hash=last.hash,
            )
        )  # fmt: skip
    result = _verify(runtime)
    assert not result.ok and "record 3 was altered" in result.message


@on_postgresql
def test_one_streams_truncated_tail_behind_its_replayed_head_is_found_by_the_checkpoint(runtime: Runtime) -> None:
    _two_streams(runtime)
    with runtime.sessions() as session:
        saved = session.execute(select(AuditHead.seq, AuditHead.hash, AuditHead.mac).where(AuditHead.id == 1)).one()
    with runtime.sessions.begin() as session:  # holds stream 0 while another request appends to stream 1
        audit.append(session, runtime.keys, [_entry("held-3")])
        audit.write_pending(session)
        with runtime.sessions.begin() as other:
            audit.append(other, runtime.keys, [_entry("other-4")])
    assert (1, 4, "other-4") in _placed(runtime)
    with runtime.sessions() as session:
        doc = json.loads(json.dumps(audit.checkpoint(session, runtime.keys)))
        assert audit.verify_checkpoint(session, runtime.keys, doc).ok
    # someone with database access removes stream 1's newest record and puts its older sealed head back
    with runtime.sessions.begin() as session:
        session.execute(delete(AuditEvent).where(AuditEvent.stream == 1, AuditEvent.stream_seq == 4))
        session.execute(
            update(AuditHead).where(AuditHead.id == 1).values(seq=saved.seq, hash=saved.hash, mac=saved.mac)
        )
    assert _verify(runtime).ok  # the chains and their heads alone look intact
    with runtime.sessions() as session:
        result = audit.verify_checkpoint(session, runtime.keys, doc)
    assert not result.ok
    assert "truncated" in result.message and "record 4 of stream 1" in result.message


@on_postgresql
def test_a_head_sealed_for_one_stream_does_not_pass_for_another(runtime: Runtime) -> None:
    _two_streams(runtime)
    with runtime.engine.begin() as conn:  # stream 2 (never written) given stream 0's sealed head
        conn.execute(
            text(
                "update audit_head set (seq, hash, mac) = (select seq, hash, mac from audit_head where id = 0)"
                " where id = 2"
            )
        )
    result = _verify(runtime)
    assert not result.ok and "stream 2's head is not sealed" in result.message


# -- the migration -------------------------------------------------------------------------------
def _pre_0007_digest(key: bytes, prev: str, seq: int, at: datetime, actor: str, kid: str) -> str:
    """How a record was hashed before 0007 (audit.py at 0006), written out here so that the test can fail."""
    body = [prev, seq, at.isoformat(), actor, "admin", None, None, "enrol", None, "created", None, kid]
    return hmac.new(key, json.dumps(body, separators=(",", ":")).encode(), sha256).hexdigest()


def test_a_chain_from_before_0007_verifies_as_stream_0_grows_and_goes_down_again(
    fresh_url: str, tmp_path: Path
) -> None:
    keys = KeyRing.generate()
    secret, kid = keys.audit.secret, keys.audit.kid
    upgrade(fresh_url, "0006_h11read")
    engine = create_engine(fresh_url)
    try:
        prev, at = audit.GENESIS, datetime(2026, 11, 1, 12, 0)
        with engine.begin() as conn:
            for seq in (1, 2, 3):
                digest = _pre_0007_digest(secret, prev, seq, at, f"admin-{seq}", kid)
                conn.execute(
                    text(
                        "insert into audit_event (seq, at, actor, role, action, outcome, kid, prev_hash, hash)"
                        " values (:seq, :at, :actor, 'admin', 'enrol', 'created', :kid, :prev, :hash)"
                    ),
                    {"seq": seq, "at": at, "actor": f"admin-{seq}", "kid": kid, "prev": prev, "hash": digest},
                )
                prev = digest
            mac = hmac.new(secret, json.dumps(["head", 3, prev]).encode(), sha256).hexdigest()
            conn.execute(
                text("insert into audit_head (id, seq, hash, mac) values (1, 3, :h, :m)"), {"h": prev, "m": mac}
            )
    finally:
        engine.dispose()

    upgrade(fresh_url)
    settings = Settings(database_url=fresh_url, keys_json=keys.to_json(), export_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(fresh_url)
    runtime = Runtime(settings, keys, engine, session_factory(engine))
    try:
        result = _verify(runtime)
        assert result.ok and result.checked == 3, result.message
        with runtime.sessions.begin() as session:
            audit.append(session, runtime.keys, [_entry("after-1"), _entry("after-2")])
        result = _verify(runtime)
        assert result.ok and result.checked == 5, result.message
        with runtime.sessions() as session:
            ids = session.execute(select(AuditEvent.seq, AuditEvent.stream, AuditEvent.stream_seq)).all()
        assert sorted(ids) == [(n, 0, n) for n in range(1, 6)]  # ids continue after the old ones
        with runtime.engine.begin() as conn:  # an old record still tamper-evident after the upgrade
            conn.execute(text("update audit_event set actor = 'someone' where seq = 2"))
        assert "record 2 was altered" in _verify(runtime).message
        with runtime.engine.begin() as conn:
            conn.execute(text("update audit_event set actor = 'admin-2' where seq = 2"))
    finally:
        runtime.close()

    command.downgrade(alembic_config(fresh_url), "0006_h11read")
    engine = create_engine(fresh_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("audit_event")}
        with engine.connect() as conn:
            heads = conn.execute(text("select id, seq from audit_head")).all()
            count = conn.execute(text("select count(*) from audit_event")).scalar_one()
    finally:
        engine.dispose()
    assert not {"stream", "stream_seq"} & columns
    assert heads == [(1, 5)] and count == 5


@on_postgresql
def test_an_append_of_many_records_is_chained_in_order_and_verified(runtime: Runtime) -> None:
    """More records than go in one statement with the head's move (a list's, a worklist's): written together
    (one COPY), each in its place, the chain verifies and an edit of one of them is caught."""
    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [_entry(f"many-{n}") for n in range(1, 21)])
    assert _placed(runtime) == sorted((0, n, f"many-{n}") for n in range(1, 21))
    assert _verify(runtime).ok
    with runtime.engine.begin() as conn:
        conn.execute(text("update audit_event set actor = 'x' where stream_seq = 11"))
    broken = _verify(runtime)
    assert not broken.ok and broken.broken_at == 11, broken.message
