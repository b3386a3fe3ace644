"""Audit records are written as their transaction commits: a reader that audits its search and then renders
holds no lock on the chain that other requests wait on, and the chain stays whole."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from homediag import audit
from homediag.runtime import Runtime
from homediag.store.models import AuditEvent


def _entry(actor: str) -> audit.Entry:
    return audit.Entry(actor, "clinician", "search", "permit", entity="Observation")


def test_a_writer_is_not_held_up_by_a_reader_that_audited_and_has_not_committed(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:  # the chain's head exists, as on any running installation
        audit.append(session, runtime.keys, [_entry("first")])
    reader = runtime.sessions()
    reader.begin()
    reader.execute(select(func.count()).select_from(AuditEvent))  # the reader's search reads
    audit.append(reader, runtime.keys, [_entry("reader")])  # audits it, then renders the Bundle...
    done = threading.Event()

    def writer() -> None:  # ...meanwhile a gateway's request is audited and commits
        with runtime.sessions.begin() as session:
            audit.append(session, runtime.keys, [_entry("gateway")])
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    finished = done.wait(timeout=20)  # before: it waited for the reader's commit (PostgreSQL row lock, SQLite file)
    reader.commit()
    reader.close()
    thread.join()
    assert finished, "the writer waited for a reader that had audited but not committed"
    with runtime.sessions() as session:
        actors = session.execute(select(AuditEvent.actor).order_by(AuditEvent.seq)).scalars().all()
        result = audit.verify(session, runtime.keys)
    assert actors == ["first", "gateway", "reader"]
    assert result.ok, result.message


def test_records_appended_are_seen_by_a_later_statement_of_the_same_transaction(runtime: Runtime) -> None:
    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [_entry("a"), _entry("b")])
        seen = session.execute(select(AuditEvent.actor).order_by(AuditEvent.seq)).scalars().all()
        assert seen == ["a", "b"]
        assert audit.verify(session, runtime.keys).ok


def test_records_of_a_rolled_back_transaction_are_not_written(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        audit.append(session, runtime.keys, [_entry("gone")])
        session.rollback()
        audit.append(session, runtime.keys, [_entry("kept")])
        session.commit()
    with runtime.sessions() as session:
        assert session.execute(select(AuditEvent.actor)).scalars().all() == ["kept"]
        assert audit.verify(session, runtime.keys).ok


def test_concurrent_writers_each_get_their_records_into_one_intact_chain(runtime: Runtime) -> None:
    """Eight writers at once (PostgreSQL: each moves the head from what it read, and reads again when another
    moved it first): every record is there once, in one chain that verifies."""
    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [_entry("first")])
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                with runtime.sessions.begin() as session:
                    audit.append(session, runtime.keys, [_entry(f"w{n}-{i}"), _entry(f"w{n}-{i}b")])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with runtime.sessions() as session:
        actors = session.execute(select(AuditEvent.actor).order_by(AuditEvent.seq)).scalars().all()
        result = audit.verify(session, runtime.keys)
    assert result.ok, result.message
    assert sorted(actors) == sorted(
        ["first"] + [f"w{n}-{i}{b}" for n in range(8) for i in range(15) for b in ("", "b")]
    )
    for n in range(8):  # a writer's two records of one transaction stay together
        mine = [a for a in actors if a.startswith(f"w{n}-")]
        assert mine == [f"w{n}-{i}{b}" for i in range(15) for b in ("", "b")]


def test_a_view_of_many_patients_appends_its_records_in_order_and_the_chain_verifies(runtime: Runtime) -> None:
    """A worklist of hundreds of patients audits one record each: written as one executemany on PostgreSQL
    (beyond a request's few), the chain and its head as for a few, and an edit still found."""
    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [_entry("first"), _entry("second")])
    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [_entry(f"patient-{n:03d}") for n in range(120)])
    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [_entry("last")])
    with runtime.sessions() as session:
        actors = session.execute(select(AuditEvent.actor).order_by(AuditEvent.seq)).scalars().all()
        assert actors == ["first", "second", *(f"patient-{n:03d}" for n in range(120)), "last"]
        assert audit.verify(session, runtime.keys).ok
    with runtime.sessions.begin() as session:
        row = session.execute(select(AuditEvent).where(AuditEvent.actor == "patient-060")).scalar_one()
        row.outcome = "deny"
    with runtime.sessions() as session:
        result = audit.verify(session, runtime.keys)
    assert not result.ok and result.broken_at == 63


def test_records_follow_the_head_after_a_rolled_back_write_and_after_another_process_wrote(runtime: Runtime) -> None:
    """SQLite chains a transaction's records after the head its process last left and moves the head only if it
    is still there: after records written and rolled back, or written by another process (its own engine),
    the next records still follow the real head."""
    from homediag.store.database import make_engine, session_factory

    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [_entry("first")])
    with runtime.sessions() as session:
        audit.append(session, runtime.keys, [_entry("rolled back")])
        session.execute(select(func.count()).select_from(AuditEvent))  # writes the records before the rollback
        session.rollback()
    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [_entry("second")])
    other = make_engine(runtime.settings.database_url)  # another process's engine
    try:
        with session_factory(other).begin() as session:
            audit.append(session, runtime.keys, [_entry("other process")])
    finally:
        other.dispose()
    with runtime.sessions.begin() as session:
        audit.append(session, runtime.keys, [_entry("third"), _entry("fourth")])
    with runtime.sessions() as session:
        actors = session.execute(select(AuditEvent.actor).order_by(AuditEvent.seq)).scalars().all()
        result = audit.verify(session, runtime.keys)
    assert actors == ["first", "second", "other process", "third", "fourth"]
    assert result.ok, result.message
