"""Care teams (clinicians and patients of a pilot) and the patients enrolled on each gateway.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "care_team",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("pilot", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "care_team_member",
        sa.Column("care_team_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["care_team_id"],
            ["care_team.id"],
        ),
        sa.PrimaryKeyConstraint("care_team_id", "user_id"),
    )
    with op.batch_alter_table("care_team_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_care_team_member_user_id"), ["user_id"], unique=False)

    op.create_table(
        "care_team_patient",
        sa.Column("care_team_id", sa.String(length=64), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["care_team_id"],
            ["care_team.id"],
        ),
        sa.ForeignKeyConstraint(
            ["patient_key"],
            ["patient.patient_key"],
        ),
        sa.PrimaryKeyConstraint("care_team_id", "patient_key"),
    )
    with op.batch_alter_table("care_team_patient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_care_team_patient_patient_key"), ["patient_key"], unique=False)

    op.create_table(
        "gateway_patient",
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_key"],
            ["patient.patient_key"],
        ),
        sa.PrimaryKeyConstraint("gateway_id", "patient_key"),
    )
    with op.batch_alter_table("gateway_patient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_patient_patient_key"), ["patient_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("gateway_patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_patient_patient_key"))

    op.drop_table("gateway_patient")
    with op.batch_alter_table("care_team_patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_care_team_patient_patient_key"))

    op.drop_table("care_team_patient")
    with op.batch_alter_table("care_team_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_care_team_member_user_id"))

    op.drop_table("care_team_member")
    op.drop_table("care_team")
