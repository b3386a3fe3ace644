"""Monitoring: versioned per-patient settings (thresholds, plan) and reviews (acknowledgements).

Revision ID: 0005_h12mon
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_h12mon"
down_revision = "0004"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "monitoring_settings",
        sa.Column("patient_key", sa.String(length=64), sa.ForeignKey("patient.patient_key"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("group", sa.String(length=64), nullable=False),
        sa.Column("content", _json, nullable=False),
        sa.Column("valid_from", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("patient_key", "version"),
    )
    op.create_table(
        "review",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("patient_key", sa.String(length=64), sa.ForeignKey("patient.patient_key"), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(), nullable=False),
        sa.Column("reviewed_by", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("task", _json, nullable=False),
        sa.Column("provenance", _json, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_review_patient_key", "review", ["patient_key"])
    op.create_table(
        "review_item",
        sa.Column("review_id", sa.String(length=64), sa.ForeignKey("review.id"), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("colour", sa.String(length=8), nullable=False),
        sa.Column("effective_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=True),
        sa.Column("gateway_received_at", sa.DateTime(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("review_id", "observation_id"),
    )
    op.create_index("ix_review_item_observation_id", "review_item", ["observation_id"])
    op.create_index("ix_review_item_patient_key", "review_item", ["patient_key"])


def downgrade() -> None:
    op.drop_index("ix_review_item_patient_key", table_name="review_item")
    op.drop_index("ix_review_item_observation_id", table_name="review_item")
    op.drop_table("review_item")
    op.drop_index("ix_review_patient_key", table_name="review")
    op.drop_table("review")
    op.drop_table("monitoring_settings")
