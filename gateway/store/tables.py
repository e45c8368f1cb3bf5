"""The store's schema as SQLAlchemy Core tables: messages, documents, deliveries, events, receipts, EDI control.

This is the shape the code queries against. Migrations (``migrations/versions``) are
frozen copies written by hand; ``tests/test_store.py`` checks both stay identical.

Timestamps are float epoch seconds (UTC), stored as double precision. Status columns hold
the spelled-out ``.value`` of :class:`gateway.model.MessageStatus` / ``DeliveryStatus``.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.model import DeliveryStatus, MessageStatus

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

MESSAGE_STATUSES = tuple(s.value for s in MessageStatus)
DELIVERY_STATUSES = tuple(s.value for s in DeliveryStatus)

# SQLite only aliases the rowid (and so autoincrements) for a column typed exactly INTEGER.
_EventId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    # Constant enum values only: nothing partner-supplied ever reaches this string.
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("partner", sa.String(200), nullable=True),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("filename", sa.Text(), nullable=False, server_default=""),
    sa.Column("source_ref", sa.Text(), nullable=False, server_default=""),
    sa.Column("raw_sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("duplicate_of", sa.String(40), sa.ForeignKey("messages.id"), nullable=True),
    sa.Column("format", sa.String(20), nullable=False, server_default=""),
    sa.Column("standard", sa.String(100), nullable=False, server_default=""),
    sa.Column("interchange", sa.String(100), nullable=False, server_default=""),
    sa.Column("received_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.CheckConstraint(_in("status", MESSAGE_STATUSES), name="status"),
    sa.Index(None, "received_at"),
    sa.Index(None, "partner", "received_at"),
    sa.Index(None, "status", "received_at"),
    sa.Index(None, "partner", "raw_sha256"),
    sa.Index(None, "partner", "channel", "source_ref"),
    sa.Index(None, "channel", "received_at"),
    sa.Index(None, "interchange"),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("message_id", sa.String(40), sa.ForeignKey("messages.id"), nullable=False),
    sa.Column("partner", sa.String(200), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("number", sa.String(200), nullable=False, server_default=""),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("blob_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.UniqueConstraint("idempotency_key"),
    sa.Index(None, "message_id"),
    sa.Index(None, "type", "number"),
    sa.Index(None, "number"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("document_id", sa.String(200), sa.ForeignKey("documents.id"), nullable=False),
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
    # Set for targets that ask for ordering: a delivery waits while an earlier one (smaller id)
    # to the same target with the same key is queued or retrying.
    sa.Column("sequence_key", sa.String(400), nullable=True),
    sa.UniqueConstraint("document_id", "target"),
    sa.CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "partner", "target", "status"),
    sa.Index(None, "target", "sequence_key", "id"),
    sa.Index(None, "delivered_at"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", _EventId, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Double(), nullable=False),
    sa.Column("message_id", sa.String(40), nullable=True),
    sa.Column("document_id", sa.String(200), nullable=True),
    sa.Column("delivery_id", sa.String(40), nullable=True),
    sa.Column("partner", sa.String(200), nullable=True),
    sa.Column("step", sa.String(40), nullable=False),
    sa.Column("outcome", sa.String(40), nullable=False),
    sa.Column("duration_ms", sa.Double(), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False, server_default=""),
    sa.Index(None, "message_id", "id"),
)

RECEIPT_DIRECTIONS = ("sent", "received")
RECEIPT_STATUSES = ("pending", "done", "failed")

# AS2 MDNs: ones we sent for messages we received, and ones partners sent for our deliveries.
receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("partner", sa.String(200), nullable=False),
    sa.Column("as2_message_id", sa.String(1000), nullable=False),   # the original message's Message-ID
    sa.Column("message_id", sa.String(40), sa.ForeignKey("messages.id"), nullable=True),
    sa.Column("delivery_id", sa.String(40), nullable=True),
    sa.Column("disposition", sa.Text(), nullable=False),
    sa.Column("mic", sa.Text(), nullable=True),
    sa.Column("mic_ok", sa.Boolean(), nullable=True),
    sa.Column("signed", sa.Boolean(), nullable=False),
    sa.Column("mode", sa.String(10), nullable=False),                # sync | async | none
    sa.Column("url", sa.Text(), nullable=True),                      # where an async MDN goes
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Double(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("blob_sha256", sa.String(64), nullable=True),          # the MDN as a MIME entity
    sa.Column("transport_sha256", sa.String(64), nullable=True),     # the AS2 request as received
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.UniqueConstraint("direction", "partner", "as2_message_id"),
    sa.CheckConstraint(_in("direction", RECEIPT_DIRECTIONS), name="direction"),
    sa.CheckConstraint(_in("status", RECEIPT_STATUSES), name="status"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "message_id"),
    sa.Index(None, "delivery_id"),
    sa.Index(None, "as2_message_id"),
)

CONTROL_LEVELS = ("interchange", "group", "message")
ACK_STATUSES = ("pending", "overdue", "accepted", "rejected", "partially_accepted")

# The last control number issued per partner, format and envelope level (outbound EDI). Rows are
# updated inside the transaction that records the interchange, so numbers are gap-free.
control_numbers = sa.Table(
    "control_numbers",
    metadata,
    sa.Column("partner", sa.String(200), primary_key=True),
    sa.Column("format", sa.String(20), primary_key=True),
    sa.Column("level", sa.String(20), primary_key=True),
    sa.Column("last", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.CheckConstraint(_in("level", CONTROL_LEVELS), name="level"),
)

# Inbound interchange control numbers already received, per partner/format/sender (duplicates).
# This table and ack_expectations name messages without a foreign key: they are bookkeeping
# that must never stop messages from being purged or truncated.
interchanges_seen = sa.Table(
    "interchanges_seen",
    metadata,
    sa.Column("partner", sa.String(200), primary_key=True),
    sa.Column("format", sa.String(20), primary_key=True),
    sa.Column("sender", sa.String(200), primary_key=True),
    sa.Column("control_number", sa.String(100), primary_key=True),
    sa.Column("message_id", sa.String(40), nullable=False),
    sa.Column("seen_at", sa.Double(), nullable=False),
)

# Acknowledgments we expect for interchanges we sent: one row for the interchange and one per
# message. ``ack_level`` is the level of the ack result that settled the row (see edi.match_ack).
ack_expectations = sa.Table(
    "ack_expectations",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
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
    sa.CheckConstraint(_in("level", CONTROL_LEVELS), name="level"),
    sa.CheckConstraint(_in("status", ACK_STATUSES), name="status"),
    sa.Index(None, "status", "due_at"),
    sa.Index(None, "partner", "format", "interchange", "message_ref"),
    sa.Index(None, "partner", "format", "group_ref", "message_ref"),
    sa.Index(None, "message_id"),
)

# Jobs that run on one node at a time (SFTP polls, overdue checks, callbacks, async MDNs): the
# node holding an unexpired lease runs the job; another takes over once it lapses.
schedule_leases = sa.Table(
    "schedule_leases",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
)

# Documents internal systems submitted through the API: who (the token's reference), the request's
# hash (a repeated Idempotency-Key must come with the same request) and the status callback owed:
# the target it goes through and the last status reported ("" until then); ``final`` once done.
api_submissions = sa.Table(
    "api_submissions",
    metadata,
    sa.Column("message_id", sa.String(40), primary_key=True),
    sa.Column("caller", sa.String(200), nullable=False),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("callback_target", sa.String(200), nullable=True),
    sa.Column("notified", sa.String(100), nullable=False, server_default=""),
    sa.Column("final", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.Index(None, "final", "message_id"),
)

# What an AS2 send expects back in its MDN (the MIC), so whichever node receives an async MDN can check it.
as2_sent = sa.Table(
    "as2_sent",
    metadata,
    sa.Column("partner", sa.String(200), primary_key=True),
    sa.Column("as2_message_id", sa.String(1000), primary_key=True),
    sa.Column("mic", sa.Text(), nullable=False),
    sa.Column("mic_algorithm", sa.String(40), nullable=False),
    sa.Column("delivery_id", sa.String(40), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
)

USER_ROLES = ("viewer", "operator")
ALERT_SEVERITIES = ("critical", "high", "medium", "low")
ALERT_STATES = ("open", "resolved")

# Dashboard accounts: viewers read (payloads masked), operators also act (replay, retry, cancel).
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("password_hash", sa.Text(), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("last_login_at", sa.Double(), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.CheckConstraint(_in("role", USER_ROLES), name="role"),
)

# Dashboard sessions: only the SHA-256 of the cookie's token is stored; ``csrf`` is the session's form token.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(100), sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("expires_at", sa.Double(), nullable=False),
    sa.Column("last_seen_at", sa.Double(), nullable=False),
    sa.Index(None, "expires_at"),
    sa.Index(None, "user_name"),
)

# Alerts the gateway raised: one open row per (rule, subject) while its condition holds.
alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("rule", sa.String(40), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),      # partner, target, certificate... it is about
    sa.Column("severity", sa.String(10), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False, server_default=""),
    sa.Column("opened_at", sa.Double(), nullable=False),
    sa.Column("resolved_at", sa.Double(), nullable=True),
    sa.Column("notified_at", sa.Double(), nullable=True),      # when the webhook took the latest change
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.CheckConstraint(_in("severity", ALERT_SEVERITIES), name="severity"),
    sa.CheckConstraint(_in("state", ALERT_STATES), name="state"),
    sa.Index(None, "state", "rule", "subject"),
    sa.Index(None, "opened_at"),
)
