"""``worklist_summary``: the kept worklist parts' running parts hold each reading of the period (not counts for a
fixed period) and the plan, so that a part is finished again at any later instant (the next morning) without
reading the patient's history (``homediag.access.status_parts``). The kept parts are a cache: the rows of the
earlier format are deleted (their mark's format is no longer used anyway).

Revision ID: 0013_h12clock
Revises: 0012_h12parts
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0013_h12clock"
down_revision = "0012_h12parts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM worklist_summary")


def downgrade() -> None:
    op.execute("DELETE FROM worklist_summary")
