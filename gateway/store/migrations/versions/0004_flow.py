"""Ordered deliveries, schedule leases, API submissions (request hash, status callbacks), AS2 MICs sent.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

A frozen copy of ``deliveries.sequence_key`` and the ``schedule_leases``, ``api_submissions`` and
``as2_sent`` tables of gateway/store/tables.py at the time of writing. Upgrade adds only what is
missing; downgrade drops what is there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = ("as2_sent", "api_submissions", "schedule_leases")
_SEQUENCE_INDEX = "ix_deliveries_target_sequence_key_id"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = set(inspector.get_table_names())
    if "sequence_key" not in {c["name"] for c in inspector.get_columns("deliveries")}:
        with op.batch_alter_table("deliveries") as batch:
            batch.add_column(sa.Column("sequence_key", sa.String(400), nullable=True))
    if _SEQUENCE_INDEX not in {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("deliveries")}:
        op.create_index(_SEQUENCE_INDEX, "deliveries", ["target", "sequence_key", "id"])
    if "schedule_leases" not in present:
        op.create_table(
            "schedule_leases",
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("owner", sa.String(200), nullable=False),
            sa.Column("expires_at", sa.Double(), nullable=False),
            sa.Column("updated_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("name", name="pk_schedule_leases"),
        )
    if "api_submissions" not in present:
        op.create_table(
            "api_submissions",
            sa.Column("message_id", sa.String(40), nullable=False),
            sa.Column("caller", sa.String(200), nullable=False),
            sa.Column("request_sha256", sa.String(64), nullable=False),
            sa.Column("callback_target", sa.String(200), nullable=True),
            sa.Column("notified", sa.String(100), nullable=False, server_default=""),
            sa.Column("final", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("updated_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("message_id", name="pk_api_submissions"),
        )
        op.create_index("ix_api_submissions_final_message_id", "api_submissions", ["final", "message_id"])
    if "as2_sent" not in present:
        op.create_table(
            "as2_sent",
            sa.Column("partner", sa.String(200), nullable=False),
            sa.Column("as2_message_id", sa.String(1000), nullable=False),
            sa.Column("mic", sa.Text(), nullable=False),
            sa.Column("mic_algorithm", sa.String(40), nullable=False),
            sa.Column("delivery_id", sa.String(40), nullable=True),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("partner", "as2_message_id", name="pk_as2_sent"),
        )


def downgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = set(inspector.get_table_names())
    for table in _TABLES:
        if table in present:
            op.drop_table(table)
    if _SEQUENCE_INDEX in {ix["name"] for ix in inspector.get_indexes("deliveries")}:
        op.drop_index(_SEQUENCE_INDEX, "deliveries")
    if "sequence_key" in {c["name"] for c in inspector.get_columns("deliveries")}:
        with op.batch_alter_table("deliveries") as batch:
            batch.drop_column("sequence_key")
