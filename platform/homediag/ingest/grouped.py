"""Group commit: single envelopes that arrive together in one process share one transaction and one commit.

A request that finds no group being written leads: it takes every request waiting (itself among them, at most
``GROUP``) and writes them as one ``Batch`` (``Pipeline.batch_of``), as a list of envelopes is written: each
envelope all-or-nothing (one the database refuses is written again alone under a savepoint, and never costs the
others), each kept in the upload log with its own outcome and audit entry, two sends of one reading stored once
(the second answered duplicate, in the group as across processes). Requests arriving meanwhile wait; when the
group is committed, each waiting request of it gets its own result, and the first request still waiting leads
the next group. No request is answered before the commit that stored it. A failure of the whole transaction
(the database away) is every grouped request's answer, as it would have been alone.

Why: with several gateways sending at once, a worker's threads each paid a transaction of ~8 round trips and
the commit's WAL flush for one or two readings; a group pays them once.
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
"""At most this many requests in one transaction (a group of lists' size)."""


@dataclass
class _Request:
    sender: Principal
    work: Callable[[Batch], None]
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


def grouped(pipeline: Pipeline, sender: Principal, work: Callable[[Batch], None]) -> list[Any]:
    """``pipeline.batch(sender, work)``, written in one transaction with the requests that arrive with it."""
    group, me = _GROUPS.of(pipeline.rt.engine), _Request(sender, work)
    with group.lock:
        group.waiting.append(me)
        lead, group.leading = not group.leading, True
    if not lead:
        me.done.wait()
        if not me.lead:
            return _answer(me)
    with group.lock:  # this request is the first waiting: it is in the group it takes
        taken, group.waiting = group.waiting[:GROUP], group.waiting[GROUP:]
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


def _answer(request: _Request) -> list[Any]:
    if request.error is not None:
        raise request.error
    assert request.results is not None
    return request.results
