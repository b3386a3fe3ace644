"""Several audit chains (streams): ``audit_event.stream`` and ``stream_seq`` (a record's place in its stream),
one ``audit_head`` row per stream (``id`` is the stream). The existing chain becomes stream 0 unchanged: its
records keep their hashes (``stream_seq`` = ``seq``, which is what their hashes bind) and its head its seal;
the head row moves from id 1 to id 0. On PostgreSQL ``seq`` is taken from its sequence from now on (records
of several streams are written at once), so the sequence is moved past the records already there.

A downgrade is possible only while every record is in stream 0 at ``seq`` = ``stream_seq`` (one chain numbered
without gaps is all the old schema can hold); otherwise it stops with a message and changes nothing.

Revision ID: 0007_h11singles
Revises: 0006_h11read
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_h11singles"
down_revision = "0006_h11read"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event") as batch:
        batch.add_column(sa.Column("stream", sa.SmallInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("stream_seq", sa.Integer(), nullable=True))
    op.execute("update audit_event set stream_seq = seq")
    with op.batch_alter_table("audit_event") as batch:
        batch.alter_column("stream_seq", existing_type=sa.Integer(), nullable=False)
        batch.create_index("ux_audit_event_stream", ["stream", "stream_seq"], unique=True)
    op.execute("update audit_head set id = 0 where id = 1")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "select setval(pg_get_serial_sequence('audit_event', 'seq'),"
            " coalesce((select max(seq) from audit_event), 0) + 1, false)"
        )


def downgrade() -> None:
    conn = op.get_bind()
    others = conn.execute(
        sa.text("select count(*) from audit_event where stream <> 0 or stream_seq <> seq")
    ).scalar_one()
    if others:  # their hashes bind their stream and place, which the schema before 0007 cannot hold
        raise RuntimeError(
            f"{others} audit records are in a stream other than 0 or numbered apart from their place in it:"
            " the schema before 0007 holds one chain numbered 1, 2, 3, ... only"
        )
    op.execute("delete from audit_head where id <> 0 and seq = 0")  # streams never written to
    op.execute("update audit_head set id = 1 where id = 0")
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_index("ux_audit_event_stream")
        batch.drop_column("stream_seq")
        batch.drop_column("stream")
