"""Group commit: envelopes that arrive together in one process (single ones, and lists) share one transaction and
one commit, written by one thread at a time.

A request that finds no group being written leads: it takes the requests waiting (itself among them, at most
``GROUP`` of them and ``GROUP_ENVELOPES`` envelopes, but always itself) and writes them as one ``Batch``
(``Pipeline.batch_of``), as a list of envelopes is written: each
envelope all-or-nothing (one the database refuses is written again alone under a savepoint, and never costs the
others), each kept in the upload log with its own outcome and audit entry, two sends of one reading stored once
(the second answered duplicate, in the group as across processes). Requests arriving meanwhile wait; when the
group is committed, each waiting request of it gets its own result, and the first request still waiting leads
the next group. No request is answered before the commit that stored it. A failure of the whole transaction
(the database away) is every grouped request's answer, as it would have been alone.

Why: with several gateways sending at once, a worker's threads each paid a transaction of ~8 round trips and
the commit's WAL flush for one or two readings; a group pays them once. Lists: two lists written at once in one
process shared its interpreter lock, and on SQLite the one holding the database's write lock then waited for the
interpreter while the other list was decoded, so the write lock was held twice as long (57 against 24 ms, median,
two gateways) and the other worker's lists waited for it (docs/performance.md, session 12).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from homediag.store.per_engine import PerEngine
from homediag.users import Principal

from .pipeline import Batch, Pipeline

GROUP = 32
"""At most this many requests in one transaction."""

GROUP_ENVELOPES = 500
"""At most this many envelopes in one transaction, unless its first request alone holds more (a list)."""


@dataclass
class _Request:
    sender: Principal
    work: Callable[[Batch], None]
    envelopes: int = 1
    done: threading.Event = field(default_factory=threading.Event)
    results: list[Any] | None = None
    error: BaseException | None = None
    lead: bool = False  # handed the lead of the next group


@dataclass
class _Group:
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: list[_Request] = field(default_factory=list)
    leading: bool = False


_GROUPS: PerEngine[_Group] = PerEngine(_Group)


def grouped(pipeline: Pipeline, sender: Principal, work: Callable[[Batch], None], envelopes: int = 1) -> list[Any]:
    """``pipeline.batch(sender, work)``, written in one transaction with the requests that arrive with it.
    ``envelopes``: how many ``work`` adds (a list's length)."""
    group, me = _GROUPS.of(pipeline.rt.engine), _Request(sender, work, envelopes)
    with group.lock:
        group.waiting.append(me)
        lead, group.leading = not group.leading, True
    if not lead:
        me.done.wait()
        if not me.lead:
            return _answer(me)
    with group.lock:  # this request is the first waiting: it is in the group it takes
        taken = _take(group.waiting)
        group.waiting = group.waiting[len(taken) :]
    try:
        outcomes = pipeline.batch_of([(r.sender, r.work) for r in taken])
        for request, outcome in zip(taken, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                request.error = outcome
            else:
                request.results = outcome
    except BaseException as exc:  # the whole transaction failed: every request of it says so
        for request in taken:
            request.error = exc
    finally:
        with group.lock:
            if group.waiting:  # the next group's lead
                group.waiting[0].lead = True
                group.waiting[0].done.set()
            else:
                group.leading = False
        for request in taken:
            if request is not me:
                request.done.set()
    return _answer(me)


def _take(waiting: list[_Request]) -> list[_Request]:
    """The first waiting requests that make a group: at most ``GROUP``, and ``GROUP_ENVELOPES`` envelopes unless the
    first alone holds more."""
    taken, envelopes = waiting[:1], waiting[0].envelopes
    for request in waiting[1:GROUP]:
        envelopes += request.envelopes
        if envelopes > GROUP_ENVELOPES:
            break
        taken.append(request)
    return taken


def _answer(request: _Request) -> list[Any]:
    if request.error is not None:
        raise request.error
    assert request.results is not None
    return request.results
