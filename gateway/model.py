"""Plain records and state enums shared by every layer; imports nothing of the gateway."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Channel(str, enum.Enum):
    """How bytes reached the gateway."""

    INBOX = "inbox"
    AS2 = "as2"
    SFTP = "sftp"
    POLL = "poll"
    API = "api"
    CLI = "cli"


class MessageStatus(str, enum.Enum):
    """Life of a received message.

    received   raw bytes committed; the pipeline has not finished with it yet
    processed  documents were produced and their deliveries queued
    failed     the pipeline rejected the bytes (see the message's error); replayable
    duplicate  the same bytes/control number were already received; not processed again
    """

    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"
    DUPLICATE = "duplicate"


class DeliveryStatus(str, enum.Enum):
    """Life of one document's hand-over to one target.

    queued     waiting for its first attempt
    retrying   an attempt failed transiently; waiting for ``next_attempt_at``
    delivered  the target accepted it (2xx / file written)
    dead       permanent failure or retries exhausted: in the dead-letter queue
    """

    QUEUED = "queued"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Received:
    """Bytes as they arrived on a channel, before anything looked inside them."""

    raw: bytes
    channel: Channel
    partner: str | None            # known from the channel (inbox folder, AS2 id, SFTP account)
    filename: str = ""
    source_ref: str = ""           # channel-level identity, e.g. inbox path+mtime+size, AS2 Message-ID
    raw_sha256: str = ""           # the blob of ``raw`` when the caller already stored it (off the writer thread)


@dataclass(slots=True)
class Document:
    """One canonical document produced by the pipeline, in the JSON envelope of DESIGN.md §4."""

    type: str                      # order | invoice | ship_notice | order_response
    partner: str
    idempotency_key: str
    envelope: dict[str, Any]       # the full JSON object delivered to targets
    number: str = ""
    targets: list[str] = field(default_factory=list)
    body: bytes | None = None      # the envelope serialized once (store.document_json), when already done
    sequence: dict[str, str] = field(default_factory=dict)   # target -> ordering key, for targets that ask


@dataclass(frozen=True, slots=True)
class DeliveryJob:
    """What a connector needs to hand one document to one target."""

    delivery_id: str
    target: str
    partner: str
    document_id: str
    document_type: str
    idempotency_key: str
    body: bytes                    # the serialized canonical JSON
    attempt: int                   # 1 for the first attempt
    document_number: str = ""      # e.g. the PO number
    filename: str = ""             # its message's file name: what a file sent to a partner is called
