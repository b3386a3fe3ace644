"""A list of 100's bulk writes on SQLite: SQLAlchemy's executemany against the driver's own (``many.insert_rows``).

``python -m bench.sqlite_many [--reps N]``: a fresh SQLite database, 10 enrolled patients, one list of 100 cuff
envelopes ingested (``IngestService.post``) with every ``many.insert_rows`` call and the dedup claim captured; then
the same rows (fresh keys each time) written both ways, alternated in this one process, each in a transaction rolled
back: "sqlalchemy" (``session.execute(insert(table), [dict per row])``, as ingest wrote them before h11sqlite: the
uploads with the admission counter returned, the claim a multi-row ``INSERT … RETURNING``) and "driver"
(``many.insert_rows``, the counter read by the next statement; the claim one ``json_each`` statement). Prints this
thread's CPU per list (min and median of N) for each table. Both ways alternate within seconds, so a machine's load
drifts the two alike: the figure to compare on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, Text, bindparam, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from homediag.api.app import create_app
from homediag.ingest import IngestService
from homediag.store import models as m
from homediag.store.repositories import many, observations, uploads
from homediag.synthetic import synthetic_patients
from homediag.users import authenticate

from . import data, env
from .client import TestClient
from .pilot import enrol

_KEYS = {"observation": ("id", "dedup"), "upload": ("id",), "audit_event": ("seq", "stream_seq")}


def _fresh(table: Table, columns: tuple[str, ...], rows: list[list[Any]], n: int) -> list[list[Any]]:
    """``rows`` with new unique keys (so that each write inserts them all)."""
    keys = [columns.index(c) for c in _KEYS.get(table.name, ("observation_id",)) if c in columns]
    out = []
    for i, row in enumerate(rows):
        row = list(row)
        for k in keys:
            row[k] = 10_000_000 + n * 1000 + i if isinstance(row[k], int) else uuid.uuid4().hex
        out.append(row)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_many", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="times each way is written (default 15)")
    reps = parser.parse_args(argv).reps
    people = synthetic_patients(10)
    envelopes = data.cuff_envelopes(people, 30)
    captured: list[tuple[Table, tuple[str, ...], list[list[Any]], dict[str, Any]]] = []
    claims: list[list[dict[str, Any]]] = []
    with env.fresh_database("sqlite") as url, env.runtime(url) as rt:
        with TestClient(create_app(rt)) as client:
            pilot = enrol(client, rt, people, (datetime.now(data.COPENHAGEN) - timedelta(days=31)).date())
        with rt.sessions() as session:
            gateway = authenticate(session, pilot.tokens["gateway"])
        insert_rows, insert_new = many.insert_rows, observations.insert_new

        def capture(session: Session, table: Table, columns: tuple[str, ...], rows: Any, **kw: Any) -> None:
            captured.append((table, columns, [list(r) for r in rows], kw))
            insert_rows(session, table, columns, rows, **kw)

        def capture_claim(session: Session, rows: list[dict[str, Any]]) -> set[str]:
            claims.append([dict(r) for r in rows])
            return insert_new(session, rows)

        many.insert_rows, observations.insert_new = capture, capture_claim  # type: ignore[assignment]
        IngestService(rt).post(gateway, json.dumps(envelopes[:100]).encode())
        many.insert_rows, observations.insert_new = insert_rows, insert_new  # type: ignore[assignment]

        dedup = m.ObservationDedup.__table__
        old_claim = (
            sqlite.insert(dedup)
            .on_conflict_do_nothing(index_elements=["patient_key", "dedup"])
            .returning(dedup.c.dedup)
        )

        def claim_old(session: Session, rows: list[dict[str, Any]]) -> None:
            keys = ("patient_key", "dedup", "observation_id", "effective_start")
            given = [
                dict(zip(keys, (r["patient_key"], r["dedup"], r["id"], r["effective_start"]), strict=True))
                for r in rows
            ]
            session.execute(old_claim, given).all()

        def claim_new(session: Session, rows: list[dict[str, Any]]) -> None:
            session.execute(observations._CLAIM_SQLITE, {"rows": observations._claims_json(session, rows)}).all()

        ways: dict[str, list[tuple[str, Callable[[Session, int], None]]]] = {"sqlalchemy": [], "driver": []}
        for table, columns, rows, kw in captured:

            def old(session: Session, n: int, t: Table = table, c: Any = columns, r: Any = rows, k: Any = kw) -> None:
                raw = k.get("raw", ())  # the resource bound as its text, as before (``type_=Text``)
                values = {name: bindparam(name, type_=Text()) if name in raw else bindparam(name) for name in c}
                if t.name == "upload":  # as before: the admission counter returned by the insert
                    statement: Any = uploads._INSERT
                else:
                    statement = sqlite.insert(t).values(values)
                if k.get("on_conflict_do_nothing"):
                    statement = statement.on_conflict_do_nothing()
                result = session.execute(statement, [dict(zip(c, row, strict=True)) for row in _fresh(t, c, r, n)])
                if t.name == "upload":
                    result.scalars().first()

            def new(session: Session, n: int, t: Table = table, c: Any = columns, r: Any = rows, k: Any = kw) -> None:
                many.insert_rows(session, t, c, _fresh(t, c, r, n), **k)
                if t.name == "upload":  # the admission counter read by the statement after
                    session.execute(uploads._VERSION).scalar_one()

            ways["sqlalchemy"].append((table.name, old))
            ways["driver"].append((table.name, new))
        for rows in claims:
            fresh = lambda n, rows=rows: [{**r, "dedup": uuid.uuid4().hex} for r in rows]  # noqa: E731
            ways["sqlalchemy"].append(("observation_dedup (claim)", lambda s, n, f=fresh: claim_old(s, f(n))))
            ways["driver"].append(("observation_dedup (claim)", lambda s, n, f=fresh: claim_new(s, f(n))))

        cpu: dict[tuple[str, str], list[float]] = defaultdict(list)
        for i in range(reps):
            for way in ("sqlalchemy", "driver") if i % 2 else ("driver", "sqlalchemy"):
                with rt.sessions() as session:
                    session.execute(text("select 1"))
                    for name, write in ways[way]:
                        c0 = time.thread_time()
                        write(session, i * 2 + (way == "driver"))
                        cpu[(way, name)].append(time.thread_time() - c0)
                    session.rollback()
    names = sorted({name for _, name in cpu})
    print(f"sqlite: a list of 100's bulk writes, CPU per list in this thread (min / median of {reps}), ms:")
    print(f"  {'table':<28} {'sqlalchemy':>17} {'driver':>17}")
    for name in [*names, "all"]:
        both = []
        for way in ("sqlalchemy", "driver"):
            runs = (
                [sum(x) for x in zip(*(cpu[(way, n)] for n in names), strict=True)]
                if name == "all"
                else cpu[(way, name)]
            )
            both.append(f"{min(runs) * 1000:7.2f} / {statistics.median(runs) * 1000:6.2f}")
        print(f"  {name:<28} {both[0]:>17} {both[1]:>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
