"""Each Observation's served text: ``observation.served_json`` (what fhirjson writes for the stored resource)
and ``served_marks`` (where a read splices meta and a clinician's triage into it, ``homediag/served.py``), so
that a search in care writes its Bundle without parsing a resource. Existing rows are back-filled here, in
batches (on PostgreSQL the columns reach every monthly partition of ``observation``).

Revision ID: 0006_h11read
Revises: 0005_h9robust
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from homediag import served
from homediag.fhir_profiles import fhirjson

revision = "0006_h11read"
down_revision = "0005_h9robust"
branch_labels = None
depends_on = None

_BATCH = 2_000


def upgrade() -> None:
    with op.batch_alter_table("observation") as batch:
        batch.add_column(sa.Column("served_json", sa.Text(), nullable=True))
        batch.add_column(sa.Column("served_marks", sa.String(length=200), nullable=True))
    conn = op.get_bind()
    # the resource as stored (text, parsed here with Decimals as the service parses it), keyset by id
    read = sa.text(
        "select id, effective_start, cast(resource as text) from observation"
        " where id > :after and served_json is null order by id limit :n"
    )
    write = sa.text(
        "update observation set served_json = :text, served_marks = :marks where id = :id and effective_start = :start"
    )
    after = ""
    while True:
        rows = conn.execute(read, {"after": after, "n": _BATCH}).all()
        if not rows:
            break
        updates = []
        for row_id, start, stored in rows:
            text, marks = served.written(fhirjson.loads(stored))
            updates.append({"text": text, "marks": marks, "id": row_id, "start": start})
        conn.execute(write, updates)
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("observation") as batch:
        batch.drop_column("served_marks")
        batch.drop_column("served_json")
