"""What became of a document sent for an internal system (the API's GET), and the callbacks that report it.

A submission with a callback target (gateway.toml ``[api] callbacks``) is reported once its
status settles: the delivery to the partner is dead, or it was delivered (with a positive MDN
where AS2 asks for one) and no acknowledgment is awaited, or the acknowledgment came, or it is
overdue (reported, and again when it arrives). The report is a delivery like any other: queued,
retried, signed by the target, under the idempotency key ``callback:<id>:<status>``.
"""

from __future__ import annotations

import json
from typing import Any

from . import canonical
from .errors import StoreError
from .model import Channel, DeliveryStatus
from .store.base import iso
from .store.edi import ACK_OUTCOMES

def document_status(store: Any, message_id: str) -> dict[str, Any] | None:
    """The status document of an outbound API/CLI message, or None when there is no such message."""
    try:
        record = store.message(message_id)
    except StoreError as exc:
        if "unknown message" in str(exc):
            return None
        raise
    if record.channel not in (Channel.API.value, Channel.CLI.value) or not record.source_ref.startswith("out:"):
        return None
    documents = store.documents_of(message_id)
    # Acknowledgments we send are queued the same way (channel api): only canonical documents count.
    if not documents or documents[0].type not in canonical.DOCUMENT_TYPES:
        return None
    # The interchange's own delivery (status callbacks are further documents of the same message).
    delivery = next((d for d in store.deliveries(message_id=message_id) if d.document_id == documents[0].id), None)
    acks = store.acks_of(message_id)
    head = next((a for a in acks if a.level == "interchange"), None)
    mdns = [r for r in store.receipts_of(message_id) if r.direction == "received"]
    mdn = mdns[-1] if mdns else None
    if head is not None and head.status in ACK_OUTCOMES:
        state = "acknowledged"
    elif delivery is not None and delivery.status is DeliveryStatus.DEAD:
        state = "dead"
    elif mdn is not None and mdn.positive:
        state = "mdn"
    elif delivery is not None and delivery.status is DeliveryStatus.DELIVERED:
        state = "sent"
    else:
        state = "queued"
    return {
        "id": record.id,
        "partner": record.partner,
        "type": documents[0].type,
        "status": state,
        "interchange": record.interchange,
        "standard": record.standard,
        "channel": record.channel,
        "created_at": iso(record.received_at),
        "delivery": None if delivery is None else {
            "id": delivery.id,
            "target": delivery.target,
            "status": delivery.status.value,
            "attempts": delivery.attempts,
            "last_error": delivery.last_error,
            "last_http_status": delivery.last_http_status,
            "next_attempt_at": (iso(delivery.next_attempt_at)
                                if delivery.status in (DeliveryStatus.QUEUED, DeliveryStatus.RETRYING) else None),
            "delivered_at": iso(delivery.delivered_at) if delivery.delivered_at else None,
        },
        "mdn": None if mdn is None else {
            "disposition": mdn.disposition, "positive": mdn.positive, "mic_ok": mdn.mic_ok,
            "at": iso(mdn.created_at),
        },
        "acknowledgment": None if head is None else {
            "status": head.status,
            "detail": head.detail,
            "due_at": iso(head.due_at),
            "at": iso(head.acked_at) if head.acked_at else None,
            "messages": [{"reference": a.message_ref, "group": a.group_ref or None, "status": a.status,
                          "detail": a.detail} for a in acks if a.level == "message"],
        },
    }


def settled(status: dict[str, Any]) -> tuple[str, bool] | None:
    """The status to report (``state`` or ``state:ack-status``) and whether it is final; None while in transit."""
    state = status["status"]
    ack = status["acknowledgment"]["status"] if status["acknowledgment"] else ""
    if state == "queued" or (state in ("sent", "mdn") and ack == "pending"):
        return None
    return (f"{state}:{ack}" if ack else state), ack != "overdue"


def report_settled(store: Any, *, limit: int = 200) -> int:
    """Queue a callback for every submission whose status settled since it was last reported; returns how many."""
    queued = 0
    for message_id, target, notified in store.callbacks_due(limit=limit):
        status = document_status(store, message_id)
        verdict = settled(status) if status is not None else None
        if verdict is None or verdict[0] == notified:
            continue
        body = json.dumps({"event": "document.status", **status}, separators=(",", ":")).encode()
        if store.queue_callback(message_id, partner=status["partner"], target=target, before=notified,
                                after=verdict[0], final=verdict[1], body=body) is not None:
            queued += 1
    return queued
