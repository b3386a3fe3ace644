"""Stable search paging: each Observation row records the transaction that wrote it (PostgreSQL);
versioned Devices: the version of the Device resource served and when it last changed.

Revision ID: 0005_h10fhir
Revises: 0005_h13bulk
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_h10fhir"
down_revision = "0005_h13bulk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("device", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.add_column("device", sa.Column("updated_at", sa.DateTime(), nullable=True))
    op.add_column("observation", sa.Column("txn", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # rows written before this revision keep NULL: committed before any walk can begin
        op.execute("ALTER TABLE observation ALTER COLUMN txn SET DEFAULT (pg_current_xact_id()::text::bigint)")


def downgrade() -> None:
    with op.batch_alter_table("observation") as batch:
        batch.drop_column("txn")
    with op.batch_alter_table("device") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("version")
