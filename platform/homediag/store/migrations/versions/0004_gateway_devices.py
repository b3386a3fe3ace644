"""The devices each gateway may upload from (by serial; * for any device).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_device",
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=300), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "serial"),
    )


def downgrade() -> None:
    op.drop_table("gateway_device")
