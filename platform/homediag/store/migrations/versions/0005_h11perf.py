"""Performance: the audit head sealed; dedup claims in a table of their own; ``observation`` partitioned by month.

- ``audit_head.mac``: HMAC of the head under the audit key, so that a removed newest record is caught.
- ``observation_dedup`` (patient key, dedup key) -> Observation: the uniqueness of a reading's dedup key, which
  a table partitioned by time cannot hold itself; filled from the stored Observations.
- PostgreSQL: ``observation`` becomes a table partitioned by range of ``effective_start``: monthly partitions
  made ahead by the application (``homediag.store.partitions``), a default one for the rest, the series index on
  each. Its primary key becomes (id, effective_start, patient_key): a partitioned table's must hold the partition
  key, and a distributed one (Citus, docs/scaling.md) the patient key.

Revision ID: 0005_h11perf
Revises: 0005_h10fhir
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_h11perf"
down_revision = "0005_h10fhir"
branch_labels = None
depends_on = None

_UQ = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    # the audit key is not at hand here: the head is sealed at the next audited action (verify says so until then)
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("mac", sa.String(length=64), nullable=True))

    op.create_table(
        "observation_dedup",
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("dedup", sa.String(length=128), nullable=False),
        sa.Column("observation_id", sa.String(length=64), nullable=False),
        sa.Column("effective_start", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("patient_key", "dedup"),
    )
    op.execute(
        "insert into observation_dedup (patient_key, dedup, observation_id, effective_start)"
        " select patient_key, dedup, id, effective_start from observation"
    )
    if op.get_bind().dialect.name == "postgresql":
        _partition()
    else:
        with op.batch_alter_table("observation", naming_convention=_UQ) as batch:
            batch.drop_constraint("uq_observation_dedup", type_="unique")


def _partition() -> None:
    from homediag.store.partitions import ensure_observation_partitions

    op.execute("alter table observation rename to observation_unpartitioned")
    op.execute("alter index ix_observation_series rename to ix_observation_series_unpartitioned")
    op.execute(
        "alter table observation_unpartitioned rename constraint observation_pkey to observation_unpartitioned_pkey"
    )
    op.execute(
        "create table observation (like observation_unpartitioned including defaults)"
        " partition by range (effective_start)"
    )
    # the partition key and the patient key (Citus: distribution column) in the primary key; id first, for reads by id
    op.execute("alter table observation add constraint observation_pkey primary key (id, effective_start, patient_key)")
    op.execute("create index ix_observation_series on observation (patient_key, code, effective_start desc)")
    op.execute("create table observation_default partition of observation default")
    ensure_observation_partitions(op.get_bind())
    op.execute("insert into observation select * from observation_unpartitioned")
    op.execute("drop table observation_unpartitioned")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("alter table observation rename to observation_partitioned")
        op.execute("alter index ix_observation_series rename to ix_observation_series_partitioned")
        op.execute(
            "alter table observation_partitioned rename constraint observation_pkey to observation_partitioned_pkey"
        )
        op.execute("create table observation (like observation_partitioned including defaults)")
        op.execute("alter table observation add constraint observation_pkey primary key (id)")
        op.execute("alter table observation add constraint observation_dedup_key unique (dedup)")
        op.execute("create index ix_observation_series on observation (patient_key, code, effective_start desc)")
        op.execute("insert into observation select * from observation_partitioned")
        op.execute("drop table observation_partitioned")  # its partitions go with it
    else:
        with op.batch_alter_table("observation", naming_convention=_UQ) as batch:
            batch.create_unique_constraint("uq_observation_dedup", ["dedup"])
    op.drop_table("observation_dedup")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("mac")
