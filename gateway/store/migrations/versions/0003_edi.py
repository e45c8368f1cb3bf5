"""EDI control: outbound control-number counters, inbound interchanges seen, acknowledgments expected.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

A frozen copy of the ``control_numbers``, ``interchanges_seen`` and ``ack_expectations`` tables
in gateway/store/tables.py at the time of writing. Upgrade creates only what is missing (a
database whose tables were made by hand or by an interrupted run is completed, not refused);
downgrade drops what is there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_LEVELS = "level IN ('interchange', 'group', 'message')"
_ACK_STATUSES = "status IN ('pending', 'overdue', 'accepted', 'rejected', 'partially_accepted')"
_ACK_INDEXES = {
    "ix_ack_expectations_status_due_at": ["status", "due_at"],
    "ix_ack_expectations_partner_format_interchange_message_ref": ["partner", "format", "interchange", "message_ref"],
    "ix_ack_expectations_partner_format_group_ref_message_ref": ["partner", "format", "group_ref", "message_ref"],
    "ix_ack_expectations_message_id": ["message_id"],
}
_TABLES = ("ack_expectations", "interchanges_seen", "control_numbers")


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "control_numbers" not in present:
        op.create_table(
            "control_numbers",
            sa.Column("partner", sa.String(200), nullable=False),
            sa.Column("format", sa.String(20), nullable=False),
            sa.Column("level", sa.String(20), nullable=False),
            sa.Column("last", sa.BigInteger(), nullable=False),
            sa.Column("updated_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("partner", "format", "level", name="pk_control_numbers"),
            sa.CheckConstraint(_LEVELS, name=op.f("ck_control_numbers_level")),
        )
    if "interchanges_seen" not in present:
        op.create_table(
            "interchanges_seen",
            sa.Column("partner", sa.String(200), nullable=False),
            sa.Column("format", sa.String(20), nullable=False),
            sa.Column("sender", sa.String(200), nullable=False),
            sa.Column("control_number", sa.String(100), nullable=False),
            sa.Column("message_id", sa.String(40), nullable=False),
            sa.Column("seen_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("partner", "format", "sender", "control_number", name="pk_interchanges_seen"),
        )
    if "ack_expectations" not in present:
        op.create_table(
            "ack_expectations",
            sa.Column("id", sa.String(40), nullable=False),
            sa.Column("message_id", sa.String(40), nullable=False),
            sa.Column("partner", sa.String(200), nullable=False),
            sa.Column("format", sa.String(20), nullable=False),
            sa.Column("level", sa.String(20), nullable=False),
            sa.Column("interchange", sa.String(100), nullable=False),
            sa.Column("group_ref", sa.String(100), nullable=False, server_default=""),
            sa.Column("message_ref", sa.String(100), nullable=False, server_default=""),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("due_at", sa.Double(), nullable=False),
            sa.Column("ack_message_id", sa.String(40), nullable=True),
            sa.Column("ack_level", sa.String(20), nullable=True),
            sa.Column("detail", sa.Text(), nullable=False, server_default=""),
            sa.Column("acked_at", sa.Double(), nullable=True),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("updated_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("id", name="pk_ack_expectations"),
            sa.CheckConstraint(_LEVELS, name=op.f("ck_ack_expectations_level")),
            sa.CheckConstraint(_ACK_STATUSES, name=op.f("ck_ack_expectations_status")),
        )
        existing: set[str] = set()
    else:
        existing = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("ack_expectations")}
    for name, columns in _ACK_INDEXES.items():
        if name not in existing:
            op.create_index(name, "ack_expectations", columns)


def downgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    for table in _TABLES:
        if table in present:
            op.drop_table(table)
