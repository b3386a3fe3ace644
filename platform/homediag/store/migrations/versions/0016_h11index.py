"""The series index ends in ``id``: ``ix_observation_series (patient_key, code, effective_start DESC, id DESC)``.

A search page is read in (sort key, id) order (``access/paging.py``: keyset on ``(effective_start, id)``, ascending
or descending); the index ended at ``effective_start``, so both engines sorted each page of a patient's series
again by id (SQLite: a temporary B-tree for the right part of the ORDER BY, holding each row's served text;
PostgreSQL: an incremental sort over the merged partitions). With ``id`` in the index a page is the index's own
order walked forwards (newest first, the series' and the latest value's order) or backwards (oldest first), and
the reads that used the old index (worklist marks, the patient page, the monitoring windows: patient key, code,
time) use this one. PostgreSQL: declared on the partitioned parent, so every partition gets it (the partitions
made later too); built here in the migration's transaction, which holds each partition's write lock while it
builds (the 1 M-reading bench stores of the test machine: 3.6 s on PostgreSQL, 6.2 s on SQLite, each the whole
``upgrade`` command).

Revision ID: 0016_h11index
Revises: 0015_h12marks
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0016_h11index"
down_revision = "0015_h12marks"
branch_labels = None
depends_on = None

_NEW = "create index ix_observation_series on observation (patient_key, code, effective_start desc, id desc)"
_OLD = "create index ix_observation_series on observation (patient_key, code, effective_start desc)"


def upgrade() -> None:
    # the same statements on both engines; on PostgreSQL the parent's index takes its partitions' with it
    op.execute("drop index ix_observation_series")
    op.execute(_NEW)


def downgrade() -> None:
    op.execute("drop index ix_observation_series")
    op.execute(_OLD)
