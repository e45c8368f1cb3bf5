"""Initial schema: messages, documents, deliveries, events.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

A frozen copy of gateway/store/tables.py at the time of writing; later changes to the
tables get their own revision. tests/test_store.py compares the migrated schema with
tables.py so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_MESSAGE_STATUS = "status IN ('received', 'processed', 'failed', 'duplicate')"
_DELIVERY_STATUS = "status IN ('queued', 'retrying', 'delivered', 'dead')"


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("partner", sa.String(200), nullable=True),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False, server_default=""),
        sa.Column("source_ref", sa.Text(), nullable=False, server_default=""),
        sa.Column("raw_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("duplicate_of", sa.String(40), nullable=True),
        sa.Column("format", sa.String(20), nullable=False, server_default=""),
        sa.Column("standard", sa.String(100), nullable=False, server_default=""),
        sa.Column("interchange", sa.String(100), nullable=False, server_default=""),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(["duplicate_of"], ["messages.id"], name="fk_messages_duplicate_of_messages"),
        sa.CheckConstraint(_MESSAGE_STATUS, name=op.f("ck_messages_status")),
    )
    op.create_index("ix_messages_received_at", "messages", ["received_at"])
    op.create_index("ix_messages_partner_received_at", "messages", ["partner", "received_at"])
    op.create_index("ix_messages_status_received_at", "messages", ["status", "received_at"])
    op.create_index("ix_messages_partner_raw_sha256", "messages", ["partner", "raw_sha256"])
    op.create_index("ix_messages_partner_channel_source_ref", "messages", ["partner", "channel", "source_ref"])

    op.create_table(
        "documents",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("partner", sa.String(200), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("number", sa.String(200), nullable=False, server_default=""),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], name="fk_documents_message_id_messages"),
        sa.UniqueConstraint("idempotency_key", name="uq_documents_idempotency_key"),
    )
    op.create_index("ix_documents_message_id", "documents", ["message_id"])
    op.create_index("ix_documents_type_number", "documents", ["type", "number"])
    op.create_index("ix_documents_number", "documents", ["number"])

    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("document_id", sa.String(200), nullable=False),
        sa.Column("partner", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.Double(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_http_status", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], name="fk_deliveries_document_id_documents"),
        sa.UniqueConstraint("document_id", "target", name="uq_deliveries_document_id_target"),
        sa.CheckConstraint(_DELIVERY_STATUS, name=op.f("ck_deliveries_status")),
    )
    op.create_index("ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_deliveries_partner_target_status", "deliveries", ["partner", "target", "status"])

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("message_id", sa.String(40), nullable=True),
        sa.Column("document_id", sa.String(200), nullable=True),
        sa.Column("delivery_id", sa.String(40), nullable=True),
        sa.Column("partner", sa.String(200), nullable=True),
        sa.Column("step", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_message_id_id", "events", ["message_id", "id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("deliveries")
    op.drop_table("documents")
    op.drop_table("messages")
