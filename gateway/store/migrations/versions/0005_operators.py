"""Operators' view: dashboard accounts and sessions, alerts, and indexes for search and statistics.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

A frozen copy of the ``users``, ``web_sessions`` and ``alerts`` tables and the search indexes of
gateway/store/tables.py at the time of writing. Upgrade adds only what is missing; downgrade
drops what is there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLES = ("alerts", "web_sessions", "users")
_INDEXES = {
    "ix_messages_channel_received_at": ("messages", ["channel", "received_at"]),
    "ix_messages_interchange": ("messages", ["interchange"]),
    "ix_receipts_as2_message_id": ("receipts", ["as2_message_id"]),
    "ix_deliveries_delivered_at": ("deliveries", ["delivered_at"]),
}


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "users" not in present:
        op.create_table(
            "users",
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("role", sa.String(20), nullable=False),
            sa.Column("password_hash", sa.Text(), nullable=False),
            sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
            sa.Column("last_login_at", sa.Double(), nullable=True),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("updated_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("name", name="pk_users"),
            sa.CheckConstraint("role IN ('viewer', 'operator')", name=op.f("ck_users_role")),
        )
    if "web_sessions" not in present:
        op.create_table(
            "web_sessions",
            sa.Column("token_sha256", sa.String(64), nullable=False),
            sa.Column("user_name", sa.String(100), nullable=False),
            sa.Column("csrf", sa.String(64), nullable=False),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("expires_at", sa.Double(), nullable=False),
            sa.Column("last_seen_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("token_sha256", name="pk_web_sessions"),
            sa.ForeignKeyConstraint(["user_name"], ["users.name"], name="fk_web_sessions_user_name_users",
                                    ondelete="CASCADE"),
        )
        op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
        op.create_index("ix_web_sessions_user_name", "web_sessions", ["user_name"])
    if "alerts" not in present:
        op.create_table(
            "alerts",
            sa.Column("id", sa.String(40), nullable=False),
            sa.Column("rule", sa.String(40), nullable=False),
            sa.Column("subject", sa.String(300), nullable=False),
            sa.Column("severity", sa.String(10), nullable=False),
            sa.Column("state", sa.String(10), nullable=False),
            sa.Column("detail", sa.Text(), nullable=False, server_default=""),
            sa.Column("opened_at", sa.Double(), nullable=False),
            sa.Column("resolved_at", sa.Double(), nullable=True),
            sa.Column("notified_at", sa.Double(), nullable=True),
            sa.Column("updated_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("id", name="pk_alerts"),
            sa.CheckConstraint("severity IN ('critical', 'high', 'medium', 'low')", name=op.f("ck_alerts_severity")),
            sa.CheckConstraint("state IN ('open', 'resolved')", name=op.f("ck_alerts_state")),
        )
        op.create_index("ix_alerts_state_rule_subject", "alerts", ["state", "rule", "subject"])
        op.create_index("ix_alerts_opened_at", "alerts", ["opened_at"])
    inspector = sa.inspect(op.get_bind())
    for name, (table, columns) in _INDEXES.items():
        if name not in {ix["name"] for ix in inspector.get_indexes(table)}:
            op.create_index(name, table, columns)


def downgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, (table, _) in _INDEXES.items():
        if name in {ix["name"] for ix in inspector.get_indexes(table)}:
            op.drop_index(name, table)
    present = set(inspector.get_table_names())
    for table in _TABLES:
        if table in present:
            op.drop_table(table)
