"""Each reading's measured values (``reading_values``) and its triage per settings content (``reading_triage``),
kept so that a freshly started process does not parse and triage every reading again, and each patient's part of
the web worklist (``worklist_summary``). All are filled by the reads that first need a row
(``homediag.monitoring.persisted``, ``homediag.access.worklist_kept``), so nothing is back-filled here.

Revision ID: 0008_h12morning
Revises: 0007_h11singles
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_h12morning"
down_revision = "0007_h11singles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reading_values",
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("measured", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("patient_key", "observation_id"),
    )
    op.create_table(
        "reading_triage",
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.String(length=64), nullable=False),
        sa.Column("verdicts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("patient_key", "observation_id", "settings"),
    )
    op.create_table(
        "worklist_summary",
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("mark", sa.String(length=64), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("patient_key"),
    )


def downgrade() -> None:
    op.drop_table("worklist_summary")
    op.drop_table("reading_triage")
    op.drop_table("reading_values")
