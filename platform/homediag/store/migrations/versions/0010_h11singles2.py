"""``admission_version``: a counter moved, in the same transaction, by every change to what admits a gateway's
upload (``patient``, ``gateway_patient``, ``gateway_device``), by triggers, so that no write path (the API, the
CLI, a key rotation, SQL typed by hand) can change admission without it. A worker keeps the admission answers it
read while the counter stands and checks the counter in a statement every upload makes anyway
(``homediag.ingest.admission``).

Revision ID: 0010_h11singles2
Revises: 0008_h12morning
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_h11singles2"
down_revision = "0009_h12first"
branch_labels = None
depends_on = None

TABLES = ("patient", "gateway_patient", "gateway_device")


def upgrade() -> None:
    op.create_table(
        "admission_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO admission_version (id, n) VALUES (0, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION homediag_admission_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " INSERT INTO admission_version (id, n) VALUES (0, 1)"
            " ON CONFLICT (id) DO UPDATE SET n = admission_version.n + 1;"
            " RETURN NULL; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_admission_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION homediag_admission_changed()"
            )
        return
    for table in TABLES:  # SQLite: row triggers, one per event
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_{event.lower()}_admission_changed AFTER {event} ON {table} BEGIN"
                " INSERT OR IGNORE INTO admission_version (id, n) VALUES (0, 0);"
                " UPDATE admission_version SET n = n + 1 WHERE id = 0; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_admission_changed ON {table}")
        op.execute("DROP FUNCTION homediag_admission_changed()")
    else:
        for table in TABLES:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_{event}_admission_changed")
    op.drop_table("admission_version")
