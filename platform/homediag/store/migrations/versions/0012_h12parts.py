"""``worklist_summary``: the Observation count a kept worklist part was computed from (``observations``, out of its
``mark``) and the running parts of its status (``parts``), so that a part can be grown by new readings, by ingest in
its transaction or by a freshly started process, instead of being computed again from the patient's history
(``homediag.access.worklist_kept``). The kept parts are a cache: the rows of the earlier format are deleted (their
mark's format is no longer used anyway).

Revision ID: 0012_h12parts
Revises: 0011_h11hot
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_h12parts"
down_revision = "0011_h11hot"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM worklist_summary")
    with op.batch_alter_table("worklist_summary") as batch:
        batch.add_column(sa.Column("observations", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("parts", sa.Text(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM worklist_summary")
    with op.batch_alter_table("worklist_summary") as batch:
        batch.drop_column("parts")
        batch.drop_column("observations")
