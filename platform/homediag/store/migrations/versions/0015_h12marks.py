"""``observation_count``: each patient key's Observation count (and latest effective time), kept by triggers on
``observation`` in the writing statement's transaction, whatever path wrote or deleted the rows (API, lists by
COPY, PHD gateway, back-fill, CLI, SQL typed by hand, erasure, key rotation). The worklist's change detector reads
it instead of counting every listed patient's Observations (``worklist_marks.marks``). PostgreSQL: statement-level
triggers with transition tables on the partitioned parent (one per event: PostgreSQL allows transition tables on
single-event triggers only); SQLite: row triggers. Existing counts are back-filled.

Revision ID: 0015_h12marks
Revises: 0014_h12nextday
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_h12marks"
down_revision = "0014_h12nextday"
branch_labels = None
depends_on = None

_GONE = (
    "INSERT INTO observation_count AS c (patient_key, observations, latest)"
    " SELECT patient_key, -count(*), NULL FROM gone GROUP BY patient_key ORDER BY patient_key"
    " ON CONFLICT (patient_key) DO UPDATE SET observations = c.observations + excluded.observations;"
    " DELETE FROM observation_count WHERE observations <= 0 AND patient_key IN (SELECT patient_key FROM gone);"
)
_ADDED = (
    "INSERT INTO observation_count AS c (patient_key, observations, latest)"
    " SELECT patient_key, count(*), max(effective_start) FROM added GROUP BY patient_key ORDER BY patient_key"
    " ON CONFLICT (patient_key) DO UPDATE SET observations = c.observations + excluded.observations,"
    " latest = greatest(c.latest, excluded.latest);"
)
_PG_FUNCTION = f"""
CREATE FUNCTION homediag_observation_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    DELETE FROM observation_count;
    RETURN NULL;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    {_GONE}
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    {_ADDED}
  END IF;
  RETURN NULL;
END $$
"""
_PG_TRIGGERS = {
    "insert": "AFTER INSERT ON observation REFERENCING NEW TABLE AS added",
    "update": "AFTER UPDATE ON observation REFERENCING OLD TABLE AS gone NEW TABLE AS added",
    "delete": "AFTER DELETE ON observation REFERENCING OLD TABLE AS gone",
    "truncate": "AFTER TRUNCATE ON observation",
}
_SQLITE_ADD = (
    "INSERT INTO observation_count (patient_key, observations, latest) VALUES (NEW.patient_key, 1, NEW.effective_start)"
    " ON CONFLICT (patient_key) DO UPDATE SET observations = observations + 1,"
    " latest = max(coalesce(latest, excluded.latest), excluded.latest);"
)
_SQLITE_GONE = (
    "UPDATE observation_count SET observations = observations - 1 WHERE patient_key = OLD.patient_key;"
    " DELETE FROM observation_count WHERE patient_key = OLD.patient_key AND observations <= 0;"
)
_SQLITE_TRIGGERS = {
    "insert": ("AFTER INSERT ON observation", _SQLITE_ADD),
    "update": ("AFTER UPDATE OF patient_key, effective_start ON observation", _SQLITE_GONE + " " + _SQLITE_ADD),
    "delete": ("AFTER DELETE ON observation", _SQLITE_GONE),
}


def upgrade() -> None:
    op.create_table(
        "observation_count",
        sa.Column("patient_key", sa.String(64), primary_key=True),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("latest", sa.DateTime(), nullable=True),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE observation IN SHARE MODE")  # no write between the back-fill and the triggers
        op.execute(_PG_FUNCTION)
        for name, when in _PG_TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER observation_{name}_counted {when} FOR EACH STATEMENT"
                " EXECUTE FUNCTION homediag_observation_counted()"
            )
    else:
        for name, (when, body) in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER observation_{name}_counted {when} FOR EACH ROW BEGIN {body} END")
    op.execute(
        "INSERT INTO observation_count (patient_key, observations, latest)"
        " SELECT patient_key, count(*), max(effective_start) FROM observation GROUP BY patient_key"
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in _PG_TRIGGERS if postgresql else _SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER observation_{name}_counted" + (" ON observation" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION homediag_observation_counted()")
    op.drop_table("observation_count")
