"""Lists of envelopes sent again while they are being written, on SQLite and PostgreSQL: each reading is stored once
(the dedup claim of a list), every envelope gets its outcome, every upload is kept, and the audit chain verifies."""

from __future__ import annotations

import json
import threading

from sqlalchemy import func, select
from test_ingest import PATIENTS, cuff_envelope

from homediag import audit
from homediag.ingest import IngestService
from homediag.store import models as m
from homediag.users import Principal


def test_a_list_sent_by_four_gateways_at_once_stores_each_reading_once(runtime, tokens, pilot):  # type: ignore[no-untyped-def]
    pilot.enrol(PATIENTS[0].cpr)
    gateway = Principal(tokens.ids["gateway"], "test gateway", "gateway", None)
    envelopes = [cuff_envelope(seed=s, taken_minutes_ago=30 + s) for s in range(12)]
    # the same readings in two lists that overlap by half, each sent twice, all four at the same moment
    bodies = [json.dumps(envelopes[:8]).encode(), json.dumps(envelopes[4:]).encode()] * 2
    service = IngestService(runtime)
    barrier = threading.Barrier(len(bodies))
    answers: list = [None] * len(bodies)

    def send(i: int) -> None:
        barrier.wait()
        answers[i] = service.post(gateway, bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert all(a is not None and a.status == 200 for a in answers)
    created: dict[str, int] = {}
    for answer in answers:
        for result in answer.body["results"]:
            assert result["outcome"] in ("created", "duplicate"), result
            for o in result["observations"]:
                created[o["id"]] = created.get(o["id"], 0) + (o["outcome"] == "created")
    assert len(created) == 24 and set(created.values()) == {1}  # 12 readings of 2 Observations, each created once
    with runtime.sessions() as session:
        per_dedup = session.execute(select(m.Observation.dedup, func.count()).group_by(m.Observation.dedup)).all()
        assert len(per_dedup) == 24 and all(n == 1 for _, n in per_dedup)
        assert session.execute(select(func.count()).select_from(m.ObservationDedup)).scalar_one() == 24
        assert session.execute(select(func.count()).select_from(m.Upload)).scalar_one() == 32  # every envelope kept
        assert audit.verify(session, runtime.keys).ok
