"""PostgreSQL: ``observation`` partitioned by month of ``effective_start``, partitions created ahead by the application.

Migration 0005 makes the table partitioned (range on ``effective_start``) with a default partition for whatever
falls outside the months made so far (old back-fills), and calls ``ensure_observation_partitions``; so does
``homediag serve`` at start-up and ``homediag db partitions`` (run it monthly, e.g. from cron, on a server that
stays up for months). Indexes are declared on the parent, so every partition gets the series index. On SQLite
nothing is partitioned and these functions do nothing.
"""

from __future__ import annotations

import logging
import re
from datetime import date

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

MONTHS_BACK = 24
MONTHS_AHEAD = 3


def _month(start: date, offset: int) -> date:
    index = start.year * 12 + start.month - 1 + offset
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"observation_{month.year:04d}_{month.month:02d}"


def is_partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(
        text(
            "select 1 from pg_partitioned_table p join pg_class c on c.oid = p.partrelid"
            " where c.relname = 'observation'"
        )
    ).first()
    return found is not None


def existing_partitions(conn: Connection) -> set[str]:
    rows = conn.execute(
        text(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
            " join pg_class p on p.oid = i.inhparent where p.relname = 'observation'"
        )
    )
    return {str(r[0]) for r in rows}


def ensure_observation_partitions(
    conn: Connection, today: date | None = None, *, back: int = MONTHS_BACK, ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Create the monthly partitions from ``back`` months before ``today`` to ``ahead`` months after it that do not
    exist yet; the names of those made. A month whose rows already sit in the default partition is left there
    (logged): the rows stay found, only without pruning."""
    if not is_partitioned(conn):
        return []
    first = _month((today or date.today()).replace(day=1), 0)
    have = existing_partitions(conn)
    made = []
    for offset in range(-back, ahead + 1):
        month, following = _month(first, offset), _month(first, offset + 1)
        name = partition_name(month)
        if name in have:
            continue
        try:
            with conn.begin_nested():
                conn.execute(
                    text(
                        f"create table {name} partition of observation"
                        f" for values from ('{month.isoformat()}') to ('{following.isoformat()}')"
                    )
                )
            made.append(name)
        except Exception:  # noqa: BLE001 - rows of that month already in the default partition
            log.warning("partition %s not made: the default partition holds rows of that month", name, exc_info=True)
    return made


# a month of ``observation`` (``partition_name``), or its default partition
_PARTITION = re.compile(r"observation_(\d{4}_\d{2}|default)")


def not_a_partition(name: str | None, type_: str, _parent: object = None) -> bool:
    """For alembic's schema comparison (``include_name``): the partitions are the application's, not the models'."""
    return not (type_ == "table" and name is not None and _PARTITION.fullmatch(name) is not None)
