"""Devices bound to patients and vendors: a device registered on a gateway may name the patient it
is enrolled for and the vendor it belongs to; an upload records the vendor its registered device
names (the vendor's view of the upload log is decided by it, not by the manufacturer a gateway writes).

Revision ID: 0005_h9robust
Revises: 0005_h12web
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_h9robust"
down_revision = "0005_h12web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_device") as batch:
        batch.add_column(sa.Column("patient_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("vendor", sa.String(length=200), nullable=True))
    with op.batch_alter_table("upload") as batch:
        batch.add_column(sa.Column("vendor", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upload") as batch:
        batch.drop_column("vendor")
    with op.batch_alter_table("gateway_device") as batch:
        batch.drop_column("vendor")
        batch.drop_column("patient_key")
