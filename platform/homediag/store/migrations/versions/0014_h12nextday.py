"""``worklist_summary``: the kept running parts write the readings' instants as microseconds since the epoch (not
ISO text), so that the next morning's first worklist view decodes 500 patients' parts without a datetime per
reading (``homediag.access.worklist_kept``, parts format 4). The kept parts are a cache: the rows of the earlier
format are deleted (a view would compute them whole anyway).

Revision ID: 0014_h12nextday
Revises: 0013_h12clock
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0014_h12nextday"
down_revision = "0013_h12clock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM worklist_summary")


def downgrade() -> None:
    op.execute("DELETE FROM worklist_summary")
