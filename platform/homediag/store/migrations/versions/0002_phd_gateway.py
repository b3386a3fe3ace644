"""PHD-conformant gateways: patient identifier aliases (HMAC for lookup, the value sealed), Device
identifier/kind/resource, the gateway's receive time of an Observation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_alias",
        sa.Column("system", sa.String(length=200), nullable=False),
        sa.Column("value_hmac", sa.String(length=64), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_key"],
            ["patient.patient_key"],
        ),
        sa.PrimaryKeyConstraint("system", "value_hmac"),
    )
    with op.batch_alter_table("patient_alias", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_alias_patient_key"), ["patient_key"], unique=False)

    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identifier", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(length=8), nullable=True))
        batch_op.add_column(
            sa.Column(
                "resource", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
            )
        )
        batch_op.create_index(batch_op.f("ix_device_identifier"), ["identifier"], unique=True)

    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gateway_received_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.drop_column("gateway_received_at")

    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_identifier"))
        batch_op.drop_column("resource")
        batch_op.drop_column("kind")
        batch_op.drop_column("identifier")

    with op.batch_alter_table("patient_alias", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_alias_patient_key"))

    op.drop_table("patient_alias")
