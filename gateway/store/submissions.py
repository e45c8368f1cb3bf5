"""API submissions: who sent a document, its request's hash (Idempotency-Key checks), the status callbacks owed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from gateway.model import DeliveryStatus
from gateway.store.base import StoreBase, constant, event_row, new_id, now_or
from gateway.store.tables import ack_expectations, api_submissions, deliveries, documents

CALLBACK_TYPE = "document_status"   # the document type of a status callback


@dataclass(frozen=True, slots=True)
class Submission:
    """What the API records with a submitted interchange (in the same transaction)."""

    caller: str                       # the bearer token's reference, e.g. "env:ERP_API_TOKEN"
    request_sha256: str               # the request's partner, type and documents, canonical JSON
    callback_target: str | None = None


def insert_submission(conn: sa.Connection, message_id: str, submission: Submission, at: float) -> None:
    """Record ``submission`` for a newly queued message (called inside ``submit_interchange``'s transaction)."""
    conn.execute(api_submissions.insert(), {
        "message_id": message_id, "caller": submission.caller, "request_sha256": submission.request_sha256,
        "callback_target": submission.callback_target, "notified": "",
        "final": submission.callback_target is None, "created_at": at, "updated_at": at})


def _channel_delivery(status: str) -> sa.Exists:
    """The submitted interchange's own delivery (document position 0) has ``status``."""
    return (sa.exists().where(documents.c.message_id == api_submissions.c.message_id)
            .where(documents.c.position == 0)
            .where(deliveries.c.document_id == documents.c.id)
            .where(deliveries.c.status == constant(status)))


def _ack(status: str) -> sa.Exists:
    return (sa.exists().where(ack_expectations.c.message_id == api_submissions.c.message_id)
            .where(ack_expectations.c.level == constant("interchange"))
            .where(ack_expectations.c.status == constant(status)))


# Callbacks that may be due: the delivery is dead, or it was delivered and no acknowledgment is
# awaited (and an overdue one was not reported already). The caller decides from the full status.
_DUE = (
    sa.select(api_submissions.c.message_id, api_submissions.c.callback_target, api_submissions.c.notified)
    .where(api_submissions.c.final == sa.false())
    .where(sa.or_(
        _channel_delivery(DeliveryStatus.DEAD.value),
        sa.and_(_channel_delivery(DeliveryStatus.DELIVERED.value), ~_ack("pending"),
                ~sa.and_(api_submissions.c.notified.like("%:overdue"), _ack("overdue")))))
    .order_by(api_submissions.c.message_id)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
_SETTLE = (
    api_submissions.update()
    .where(api_submissions.c.message_id == sa.bindparam("p_message"))
    .where(api_submissions.c.notified == sa.bindparam("before"))
    .values(notified=sa.bindparam("after"), final=sa.bindparam("is_final", type_=sa.Boolean),
            updated_at=sa.bindparam("at", type_=sa.Double))
)
_NEXT_POSITION = sa.select(sa.func.coalesce(sa.func.max(documents.c.position), 0) + 1).where(
    documents.c.message_id == sa.bindparam("p_message"))


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    message_id: str
    caller: str
    request_sha256: str
    callback_target: str | None
    notified: str
    final: bool


class SubmissionsMixin(StoreBase):
    """submission / callbacks_due / queue_callback."""

    def submission(self, message_id: str) -> SubmissionRecord | None:
        """The API submission that queued ``message_id``, if it came through the API."""
        with self._read("reading an API submission") as conn:
            row = conn.execute(sa.select(
                api_submissions.c.message_id, api_submissions.c.caller, api_submissions.c.request_sha256,
                api_submissions.c.callback_target, api_submissions.c.notified, api_submissions.c.final,
            ).where(api_submissions.c.message_id == message_id)).first()
        return SubmissionRecord(*row) if row is not None else None

    def callbacks_due(self, *, limit: int = 200) -> list[tuple[str, str, str]]:
        """(message id, callback target, status last reported) of submissions whose status may have settled."""
        with self._read("looking for status callbacks") as conn:
            return [tuple(row) for row in conn.execute(_DUE, {"limit": limit})]

    def queue_callback(self, message_id: str, *, partner: str, target: str, before: str, after: str,
                       final: bool, body: bytes, now: float | None = None) -> str | None:
        """Queue the status ``body`` to ``target`` and note ``after`` as reported, in one transaction.

        Returns the delivery id, or None when the reported status is no longer ``before``
        (another node reported it meanwhile). The callback is a document of the submitted
        message (type ``document_status``) with idempotency key ``callback:<message>:<status>``,
        so one status is never reported twice, and it shows in the message's timeline.
        """
        at = now_or(now)
        sha = self.blobs.put(body)
        key = f"callback:{message_id}:{after}"
        document_id = "cb_" + hashlib.sha256(key.encode()).hexdigest()[:24]
        with self._write("queueing a status callback") as conn:
            if conn.execute(_SETTLE, {"p_message": message_id, "before": before, "after": after,
                                      "is_final": final, "at": at}).rowcount != 1:
                return None
            position = conn.execute(_NEXT_POSITION, {"p_message": message_id}).scalar_one()
            conn.execute(documents.insert(), {
                "id": document_id, "message_id": message_id, "partner": partner, "type": CALLBACK_TYPE,
                "number": after, "position": position, "idempotency_key": key, "blob_sha256": sha,
                "created_at": at, "updated_at": at})
            delivery_id = new_id("dlv", at)
            conn.execute(deliveries.insert(), {
                "id": delivery_id, "document_id": document_id, "partner": partner, "target": target,
                "status": DeliveryStatus.QUEUED.value, "attempts": 0, "next_attempt_at": at, "lease_owner": None,
                "lease_expires_at": None, "delivered_at": None, "created_at": at, "updated_at": at})
            self._insert_events(conn, [event_row("callback", "queued", at, message_id, document_id, delivery_id,
                                                 partner, detail=f"status {after} for target {target}")])
        return delivery_id
