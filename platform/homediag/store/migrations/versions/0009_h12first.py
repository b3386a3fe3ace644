"""Each consent's decision-relevant facts (``consent.facts``, ``homediag.consent.facts_of``), written when a
consent is recorded and read by decisions instead of validating the whole resource in every process; back-filled
here by parsing each current consent as recording it does (a consent the parser refuses, which recording never
stored, keeps no facts and is parsed by the decision as before). And each reading's shape as the web pages show it
(``reading_shape``), written at ingest or by the first read that needs it, and the web pages' charts as drawn
(``drawn_chart``): nothing back-filled.

Revision ID: 0009_h12first
Revises: 0008_h12morning
Create Date: 2026-11-30
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from homediag import consent

revision = "0009_h12first"
down_revision = "0008_h12morning"
branch_labels = None
depends_on = None

_CONSENT = sa.table("consent", sa.column("id", sa.String), sa.column("resource", sa.JSON), sa.column("facts", sa.Text))


def upgrade() -> None:
    op.create_table(
        "reading_shape",
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("shape", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("patient_key", "observation_id"),
    )
    op.create_table(
        "drawn_chart",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("svg", sa.Text(), nullable=False),
        sa.Column("drawn_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("drawn_chart", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drawn_chart_drawn_at"), ["drawn_at"], unique=False)
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("facts", sa.Text(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_CONSENT.c.id, _CONSENT.c.resource)).all()
    for consent_id, resource in rows:
        if isinstance(resource, str):  # a driver that hands JSON back as text
            resource = json.loads(resource)
        try:
            facts = consent.facts_of(consent.parse_consent(resource))
        except consent.ConsentError:
            continue
        bind.execute(_CONSENT.update().where(_CONSENT.c.id == consent_id).values(facts=json.dumps(facts)))


def downgrade() -> None:
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_column("facts")
    with op.batch_alter_table("drawn_chart", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drawn_chart_drawn_at"))
    op.drop_table("drawn_chart")
    op.drop_table("reading_shape")
