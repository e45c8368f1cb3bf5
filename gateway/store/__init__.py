"""Durable state: messages, documents, the delivery queue, the event log, payload blobs.

The only package that imports sqlalchemy. Everything else uses :class:`Store` and the
frozen records it returns.
"""

from gateway.store.blobs import BlobStore
from gateway.store.edi import AckExpectation, AckMatch, AckResult, Built
from gateway.store.messages import document_json
from gateway.store.records import (
    ClaimedDelivery,
    DeliveryRecord,
    DocumentRecord,
    EventRecord,
    MessageRecord,
    ReceiveResult,
)
from gateway.store.store import Store
from gateway.store.transfers import ReceiptRecord

__all__ = [
    "AckExpectation",
    "AckMatch",
    "AckResult",
    "Built",
    "BlobStore",
    "ClaimedDelivery",
    "DeliveryRecord",
    "DocumentRecord",
    "EventRecord",
    "MessageRecord",
    "ReceiptRecord",
    "ReceiveResult",
    "Store",
    "document_json",
]
