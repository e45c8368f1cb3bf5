"""Frozen records the store returns (one per table row, plus claim and receive results)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from gateway.model import DeliveryStatus, MessageStatus


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One received message (a row of ``messages``); times are epoch seconds (UTC)."""

    id: str
    partner: str | None
    channel: str
    filename: str
    source_ref: str
    raw_sha256: str
    size: int
    status: MessageStatus
    duplicate_of: str | None
    format: str
    standard: str
    interchange: str
    received_at: float
    updated_at: float
    error: str | None


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """One canonical document produced from a message (a row of ``documents``)."""

    id: str
    message_id: str
    partner: str
    type: str
    number: str
    position: int
    idempotency_key: str
    blob_sha256: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One document's hand-over to one target (a row of ``deliveries``)."""

    id: str
    document_id: str
    partner: str
    target: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    last_error: str | None
    last_http_status: int | None
    created_at: float
    updated_at: float
    delivered_at: float | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the transmission log (a row of ``events``)."""

    id: int
    at: float
    message_id: str | None
    document_id: str | None
    delivery_id: str | None
    partner: str | None
    step: str
    outcome: str
    duration_ms: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery leased to one worker, with everything needed to send it.

    ``attempts`` counts this attempt (1 on the first); ``body`` is the document's JSON.
    """

    delivery_id: str
    document_id: str
    message_id: str
    partner: str
    target: str
    document_type: str
    idempotency_key: str
    attempts: int
    created_at: float
    body: bytes
    document_number: str = ""   # e.g. the PO number
    received_at: float = 0.0    # when its message arrived (receipt-to-delivery latency)
    filename: str = ""          # its message's file name (what a file sent to a partner is called)


@dataclass(frozen=True, slots=True)
class ReceiveResult:
    """What :meth:`Store.receive` did with the bytes.

    recovered     the same channel reference was stored before (e.g. a crash before the
                  inbox file was archived): ``message`` is that earlier message, nothing new
                  was stored, and the caller should just finish acknowledging it
    duplicate_of  the same bytes came from this partner within the duplicate window:
                  ``message`` is a new message with status ``duplicate`` (not to be processed)
    """

    message: MessageRecord
    recovered: bool = False
    duplicate_of: str | None = None

    @property
    def should_process(self) -> bool:
        """Whether the pipeline has to run on this message now."""
        return not self.recovered and self.duplicate_of is None


# Builders from result rows whose columns are selected in the record's field order (see the
# *_COLUMNS lists in gateway.store.base): positional, no mapping views, one enum lookup.


def message_record(row: Sequence[Any]) -> MessageRecord:
    """A MessageRecord from a row of ``MESSAGE_COLUMNS``."""
    (id_, partner, channel, filename, source_ref, raw_sha256, size, status, duplicate_of, format_, standard,
     interchange, received_at, updated_at, error) = row
    return MessageRecord(id_, partner, channel, filename, source_ref, raw_sha256, size, MessageStatus(status),
                         duplicate_of, format_, standard, interchange, received_at, updated_at, error)


def document_record(row: Sequence[Any]) -> DocumentRecord:
    """A DocumentRecord from a row of ``DOCUMENT_COLUMNS``."""
    return DocumentRecord(*row)


def delivery_record(row: Sequence[Any]) -> DeliveryRecord:
    """A DeliveryRecord from a row of ``DELIVERY_COLUMNS``."""
    (id_, document_id, partner, target, status, attempts, next_attempt_at, lease_owner, lease_expires_at,
     last_error, last_http_status, created_at, updated_at, delivered_at) = row
    return DeliveryRecord(id_, document_id, partner, target, DeliveryStatus(status), attempts, next_attempt_at,
                          lease_owner, lease_expires_at, last_error, last_http_status, created_at, updated_at,
                          delivered_at)


def event_record(row: Sequence[Any]) -> EventRecord:
    """An EventRecord from a row of ``EVENT_COLUMNS``."""
    return EventRecord(*row)


def field_names(cls: type) -> tuple[str, ...]:
    """The record's field names in order (the column order its builder expects)."""
    return tuple(f.name for f in fields(cls))
