"""The transmission log and operator queries: events, timelines, searches, queue depth."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.errors import StoreError
from gateway.model import DeliveryStatus, MessageStatus
from gateway.store.base import DELIVERY_COLUMNS, EVENT_COLUMNS, MESSAGE_COLUMNS, StoreBase, constant_in, now_or
from gateway.store.records import (
    DeliveryRecord,
    EventRecord,
    MessageRecord,
    delivery_record,
    event_record,
    message_record,
)
from gateway.store.tables import deliveries, documents, events, messages

# Delivered rows are history, not queue: counting them would scan the whole table.
_QUEUE_STATUSES = (DeliveryStatus.QUEUED.value, DeliveryStatus.RETRYING.value, DeliveryStatus.DEAD.value)

_SELECT_TIMELINE = (
    sa.select(*EVENT_COLUMNS).where(events.c.message_id == sa.bindparam("message_id")).order_by(events.c.id)
)
_SELECT_DELIVERY = sa.select(*DELIVERY_COLUMNS).where(deliveries.c.id == sa.bindparam("delivery_id"))
_SELECT_RECEIVED_AT = sa.select(messages.c.received_at).where(messages.c.id == sa.bindparam("message_id"))
_SELECT_QUEUE_DEPTH = (
    sa.select(deliveries.c.partner, deliveries.c.target, deliveries.c.status, sa.func.count())
    .where(constant_in(deliveries.c.status, _QUEUE_STATUSES))
    .group_by(deliveries.c.partner, deliveries.c.target, deliveries.c.status)
)


class LogMixin(StoreBase):
    """event / timeline / search_messages / deliveries / delivery / queue_depth."""

    def event(
        self,
        step: str,
        outcome: str,
        *,
        message_id: str | None = None,
        document_id: str | None = None,
        delivery_id: str | None = None,
        partner: str | None = None,
        duration_ms: float | None = None,
        detail: str = "",
        now: float | None = None,
    ) -> None:
        """Append one event to the log (e.g. step "parsed", outcome "ok", with its timing).

        A missing message id or partner is filled in from the delivery or document given,
        so the event shows up in that message's timeline.
        """
        at = now_or(now)
        with self._write("logging an event") as conn:
            self._add_event(conn, step, outcome, at=at, message_id=message_id, document_id=document_id,
                            delivery_id=delivery_id, partner=partner, duration_ms=duration_ms, detail=detail)

    def timeline(self, message_id: str) -> list[EventRecord]:
        """Every event of a message, its documents and their deliveries, in the order logged.

        Events are stamped with their message id when logged (see ``event``), so this reads
        one index.
        """
        with self._read("reading a timeline") as conn:
            rows = conn.execute(_SELECT_TIMELINE, {"message_id": message_id}).all()
        return [event_record(r) for r in rows]

    def search_messages(
        self,
        *,
        partner: str | None = None,
        status: MessageStatus | str | None = None,
        document_type: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        before_id: str | None = None,
    ) -> list[MessageRecord]:
        """Messages matching every filter given, newest first, at most ``limit``.

        ``since``/``until`` bound ``received_at`` (since inclusive, until exclusive);
        ``document_type`` keeps messages that produced such a document. For the next page
        pass the last id of this page as ``before_id`` (keyset paging: stable under inserts).
        """
        query = sa.select(*MESSAGE_COLUMNS)
        if partner is not None:
            query = query.where(messages.c.partner == partner)
        if status is not None:
            query = query.where(messages.c.status == MessageStatus(status).value)
        if document_type is not None:
            query = query.where(
                sa.exists().where(documents.c.message_id == messages.c.id, documents.c.type == document_type)
            )
        if since is not None:
            query = query.where(messages.c.received_at >= since)
        if until is not None:
            query = query.where(messages.c.received_at < until)
        with self._read("searching messages") as conn:
            if before_id is not None:
                cursor = conn.execute(_SELECT_RECEIVED_AT, {"message_id": before_id}).scalar()
                if cursor is None:
                    raise StoreError(f"unknown message {before_id!r} (paging cursor)")
                query = query.where(sa.or_(
                    messages.c.received_at < cursor,
                    sa.and_(messages.c.received_at == cursor, messages.c.id < before_id),
                ))
            rows = conn.execute(
                query.order_by(messages.c.received_at.desc(), messages.c.id.desc()).limit(max(0, limit))
            ).all()
        return [message_record(r) for r in rows]

    def deliveries(
        self,
        *,
        status: DeliveryStatus | str | None = None,
        partner: str | None = None,
        target: str | None = None,
        message_id: str | None = None,
        document_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRecord]:
        """Deliveries matching every filter given, most recently changed first."""
        query = sa.select(*DELIVERY_COLUMNS)
        if status is not None:
            query = query.where(deliveries.c.status == DeliveryStatus(status).value)
        if partner is not None:
            query = query.where(deliveries.c.partner == partner)
        if target is not None:
            query = query.where(deliveries.c.target == target)
        if document_id is not None:
            query = query.where(deliveries.c.document_id == document_id)
        if message_id is not None:
            query = query.where(
                deliveries.c.document_id.in_(sa.select(documents.c.id).where(documents.c.message_id == message_id))
            )
        with self._read("listing deliveries") as conn:
            rows = conn.execute(
                query.order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc()).limit(max(0, limit))
            ).all()
        return [delivery_record(r) for r in rows]

    def delivery(self, delivery_id: str) -> DeliveryRecord:
        """One delivery; StoreError if there is none with this id."""
        with self._read("reading a delivery") as conn:
            row = conn.execute(_SELECT_DELIVERY, {"delivery_id": delivery_id}).first()
        if row is None:
            raise StoreError(f"unknown delivery {delivery_id!r}")
        return delivery_record(row)

    def queue_depth(self) -> dict[tuple[str, str, DeliveryStatus], int]:
        """Counts of undelivered deliveries per (partner, target, status): queued, retrying, dead."""
        with self._read("measuring the queue") as conn:
            rows = conn.execute(_SELECT_QUEUE_DEPTH).all()
        return {(p, t, DeliveryStatus(s)): n for p, t, s, n in rows}
