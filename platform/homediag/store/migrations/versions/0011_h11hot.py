"""``admission_version`` moved by monitoring settings changes too: ingest keeps each reading's triage under the
patient's settings history in force (``monitoring.ingested``), and a worker remembers the histories it read with
its admission answers, labelled and checked by the same counter (``homediag.ingest.admission``). A settings
version recorded by any path (the API, the CLI, SQL typed by hand) moves the counter in its own transaction.

Revision ID: 0011_h11hot
Revises: 0010_h11singles2
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0011_h11hot"
down_revision = "0010_h11singles2"
branch_labels = None
depends_on = None

TABLE = "monitoring_settings"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # the function of 0010_h11singles2
        op.execute(
            f"CREATE TRIGGER {TABLE}_admission_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {TABLE}"
            " FOR EACH STATEMENT EXECUTE FUNCTION homediag_admission_changed()"
        )
        return
    for event in ("INSERT", "UPDATE", "DELETE"):  # SQLite: row triggers, one per event
        op.execute(
            f"CREATE TRIGGER {TABLE}_{event.lower()}_admission_changed AFTER {event} ON {TABLE} BEGIN"
            " INSERT OR IGNORE INTO admission_version (id, n) VALUES (0, 0);"
            " UPDATE admission_version SET n = n + 1 WHERE id = 0; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TABLE}_admission_changed ON {TABLE}")
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {TABLE}_{event}_admission_changed")
