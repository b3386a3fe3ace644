"""The audit chain's head sealed under the audit key (a removed newest record is caught).

Revision ID: 0005_h11perf
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_h11perf"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the key is not at hand here: the head is sealed at the next audited action (audit verify says so until then)
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("mac", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("mac")
