"""AS2 receipts (MDNs) sent and received.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

A frozen copy of the ``receipts`` table in gateway/store/tables.py at the time of writing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("partner", sa.String(200), nullable=False),
        sa.Column("as2_message_id", sa.String(1000), nullable=False),
        sa.Column("message_id", sa.String(40), nullable=True),
        sa.Column("delivery_id", sa.String(40), nullable=True),
        sa.Column("disposition", sa.Text(), nullable=False),
        sa.Column("mic", sa.Text(), nullable=True),
        sa.Column("mic_ok", sa.Boolean(), nullable=True),
        sa.Column("signed", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("blob_sha256", sa.String(64), nullable=True),
        sa.Column("transport_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_receipts"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name="fk_receipts_message_id_messages"),
        sa.UniqueConstraint("direction", "partner", "as2_message_id",
                            name="uq_receipts_direction_partner_as2_message_id"),
        sa.CheckConstraint("direction IN ('sent', 'received')", name=op.f("ck_receipts_direction")),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name=op.f("ck_receipts_status")),
    )
    op.create_index("ix_receipts_status_next_attempt_at", "receipts", ["status", "next_attempt_at"])
    op.create_index("ix_receipts_message_id", "receipts", ["message_id"])
    op.create_index("ix_receipts_delivery_id", "receipts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("receipts")
