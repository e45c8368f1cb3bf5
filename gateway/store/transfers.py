"""Outbound submissions (a file for a partner, queued in one transaction) and AS2 receipts (MDNs)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from gateway.model import Channel, DeliveryStatus, MessageStatus
from gateway.store.base import StoreBase, event_row, new_id, now_or
from gateway.store.messages import _SELECT_MESSAGE
from gateway.store.records import MessageRecord, message_record
from gateway.store.tables import deliveries, documents, messages, receipts


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """One MDN (a row of ``receipts``): ``direction`` ``sent`` (ours) or ``received`` (a partner's)."""

    id: str
    direction: str
    partner: str
    as2_message_id: str
    message_id: str | None
    delivery_id: str | None
    disposition: str
    mic: str | None
    mic_ok: bool | None
    signed: bool
    mode: str
    url: str | None
    status: str
    attempts: int
    next_attempt_at: float | None
    error: str | None
    blob_sha256: str | None
    transport_sha256: str | None
    created_at: float
    updated_at: float

    @property
    def positive(self) -> bool:
        """Did the receipt say the message was processed without error?"""
        return self.disposition.strip().lower() == "processed"


_COLUMNS = tuple(receipts.c[name] for name in ReceiptRecord.__slots__)  # type: ignore[attr-defined]
_SELECT = sa.select(*_COLUMNS)
_BY_ORIGINAL = _SELECT.where(receipts.c.direction == sa.bindparam("direction"),
                             receipts.c.partner == sa.bindparam("partner"),
                             receipts.c.as2_message_id == sa.bindparam("as2_message_id"))
_OF_MESSAGE = _SELECT.where(sa.or_(receipts.c.message_id == sa.bindparam("message_id"),
                                   receipts.c.delivery_id.in_(
                                       sa.select(deliveries.c.id).join(documents, documents.c.id == deliveries.c.document_id)
                                       .where(documents.c.message_id == sa.bindparam("message_id"))))
                            ).order_by(receipts.c.created_at, receipts.c.id)
_DUE_ASYNC = (_SELECT.where(receipts.c.status == "pending", receipts.c.direction == "sent",
                            receipts.c.next_attempt_at <= sa.bindparam("now"))
              .order_by(receipts.c.next_attempt_at).limit(sa.bindparam("limit")))
_BY_ID = _SELECT.where(receipts.c.id == sa.bindparam("receipt_id"))
_SOURCE_SHA = (sa.select(messages.c.raw_sha256)
                .where(messages.c.partner == sa.bindparam("partner"), messages.c.channel == sa.bindparam("channel"),
                       messages.c.source_ref == sa.bindparam("source_ref"))
                .limit(1))


class TransfersMixin(StoreBase):
    """submit_outbound / add_receipt / receipt_for / receipts_of / due_async_mdns / settle_async_mdn / source_sha256."""

    def submit_outbound(self, raw: bytes, *, partner: str, target: str, filename: str, channel: Channel = Channel.CLI,
                        document_type: str = "edi", idempotency_key: str | None = None,
                        now: float | None = None) -> tuple[MessageRecord, str]:
        """Queue ``raw`` for a partner channel (e.g. ``as2:ACME``): message, document and delivery in one commit.

        The message is stored already ``processed`` (there is nothing to parse on the way out),
        so a crash can never send it through the inbound pipeline. ``idempotency_key`` (default:
        from the bytes, partner and file name) makes a repeated submission return the first
        one's delivery instead of sending twice. Returns ``(message, delivery_id)``.
        """
        at = now_or(now)
        sha = self.blobs.put(raw)
        key = idempotency_key or hashlib.sha256(f"out\0{partner}\0{sha}\0{filename}".encode()).hexdigest()[:32]
        with self._write("queueing an outbound file", durable=True) as conn:
            self._lock(conn, ("outbound", partner, key))
            existing = conn.execute(
                sa.select(deliveries.c.id, documents.c.message_id)
                .join(documents, documents.c.id == deliveries.c.document_id)
                .where(documents.c.idempotency_key == key, deliveries.c.target == target)).first()
            if existing is not None:
                self._insert_events(conn, event_row("submitted", "duplicate", at, existing[1], None, existing[0],
                                                    partner, detail=f"{filename}: already queued (key {key})"))
                return self._message(conn, existing[1]), existing[0]
            message_id, document_id, delivery_id = new_id("msg", at), "out_" + key[:24], new_id("dlv", at)
            conn.execute(messages.insert(), {
                "id": message_id, "partner": partner, "channel": Channel(channel).value, "filename": filename,
                "source_ref": f"out:{key}", "raw_sha256": sha, "size": len(raw),
                "status": MessageStatus.PROCESSED.value, "duplicate_of": None, "format": "", "standard": "",
                "interchange": "", "received_at": at, "updated_at": at, "error": None,
            })
            conn.execute(documents.insert(), {
                "id": document_id, "message_id": message_id, "partner": partner, "type": document_type,
                "number": filename, "position": 0, "idempotency_key": key, "blob_sha256": sha,
                "created_at": at, "updated_at": at,
            })
            conn.execute(deliveries.insert(), {
                "id": delivery_id, "document_id": document_id, "partner": partner, "target": target,
                "status": DeliveryStatus.QUEUED.value, "attempts": 0, "next_attempt_at": at, "lease_owner": None,
                "lease_expires_at": None, "delivered_at": None, "created_at": at, "updated_at": at,
            })
            self._insert_events(conn, [
                event_row("submitted", "ok", at, message_id, document_id, None, partner,
                          detail=f"{Channel(channel).value} {filename} ({len(raw)} bytes) for {target}"),
                event_row("queued", "ok", at, message_id, document_id, delivery_id, partner, detail=f"target {target}"),
            ])
            return self._message(conn, message_id), delivery_id

    def source_sha256(self, partner: str, channel: Channel | str, source_ref: str) -> str | None:
        """The raw SHA-256 of a message already stored from this partner, channel and source ref, if any."""
        with self._read("looking up a source ref") as conn:
            return conn.execute(_SOURCE_SHA, {"partner": partner, "channel": Channel(channel).value,
                                              "source_ref": source_ref}).scalar()

    def _message(self, conn: sa.Connection, message_id: str) -> MessageRecord:
        return message_record(conn.execute(_SELECT_MESSAGE, {"message_id": message_id}).one())

    def add_receipt(self, *, direction: str, partner: str, as2_message_id: str, disposition: str, signed: bool,
                    mode: str, message_id: str | None = None, delivery_id: str | None = None,
                    mic: str | None = None, mic_ok: bool | None = None, url: str | None = None,
                    entity: bytes | None = None, transport_sha256: str | None = None, status: str = "done",
                    durable: bool = True, now: float | None = None) -> ReceiptRecord:
        """Store an MDN (its MIME ``entity`` as a blob) and log it on its message; durable by default.

        ``transport_sha256`` names a blob the caller stored: the AS2 request as it came in.

        A receipt for the same (direction, partner, Message-ID) already stored is returned
        unchanged (the first one stands), with a "duplicate" event -- except that a partner's
        positive MDN replaces a negative one it sent for an earlier attempt.
        """
        at = now_or(now)
        blob = self.blobs.put(entity) if entity is not None else None
        step = "mdn-sent" if direction == "sent" else "mdn-received"
        with self._write("storing an MDN", durable=durable) as conn:
            self._lock(conn, ("receipt", direction, partner, as2_message_id))
            found = conn.execute(_BY_ORIGINAL, {"direction": direction, "partner": partner,
                                                "as2_message_id": as2_message_id}).first()
            if found is not None:
                first = ReceiptRecord(*found)
                if direction == "received" and not first.positive and disposition.strip().lower() == "processed":
                    # A retry's positive MDN supersedes an earlier negative one: the message got through.
                    conn.execute(receipts.update().where(receipts.c.id == first.id).values(
                        disposition=disposition, mic=mic, mic_ok=mic_ok, signed=signed, mode=mode,
                        blob_sha256=blob, delivery_id=delivery_id or first.delivery_id, updated_at=at))
                    self._add_event(conn, step, "ok", at=at, message_id=message_id, delivery_id=delivery_id,
                                    partner=partner, detail=f"{disposition} for {as2_message_id} (replaces "
                                    f"{first.disposition})")
                    return ReceiptRecord(*conn.execute(_BY_ID, {"receipt_id": first.id}).one())
                self._add_event(conn, step, "duplicate", at=at, message_id=message_id or first.message_id,
                                delivery_id=delivery_id, partner=partner,
                                detail=f"MDN for {as2_message_id} already stored ({first.disposition})")
                return first
            record = ReceiptRecord(
                id=new_id("mdn", at), direction=direction, partner=partner, as2_message_id=as2_message_id,
                message_id=message_id, delivery_id=delivery_id, disposition=disposition, mic=mic, mic_ok=mic_ok,
                signed=signed, mode=mode, url=url, status=status, attempts=0,
                next_attempt_at=at if status == "pending" else None, error=None, blob_sha256=blob,
                transport_sha256=transport_sha256, created_at=at, updated_at=at)
            conn.execute(receipts.insert(), {name: getattr(record, name) for name in ReceiptRecord.__slots__})
            what = "queued for " + (url or "-") if status == "pending" else mode
            mic_text = "" if mic_ok is None else (", MIC matches" if mic_ok else ", MIC DOES NOT MATCH")
            self._add_event(conn, step, "ok" if record.positive and mic_ok is not False else "error", at=at,
                            message_id=message_id, delivery_id=delivery_id, partner=partner,
                            detail=f"{disposition} for {as2_message_id} ({what}{', signed' if signed else ''}{mic_text})")
            return record

    def receipt_for(self, direction: str, partner: str, as2_message_id: str) -> ReceiptRecord | None:
        """The stored MDN for a Message-ID, if any (duplicate detection, async MDN waits)."""
        with self._read("reading an MDN") as conn:
            row = conn.execute(_BY_ORIGINAL, {"direction": direction, "partner": partner,
                                              "as2_message_id": as2_message_id}).first()
        return ReceiptRecord(*row) if row else None

    def receipt(self, receipt_id: str) -> ReceiptRecord | None:
        with self._read("reading an MDN") as conn:
            row = conn.execute(_BY_ID, {"receipt_id": receipt_id}).first()
        return ReceiptRecord(*row) if row else None

    def receipts_of(self, message_id: str) -> list[ReceiptRecord]:
        """MDNs of a message: the one we sent for it, or partners' MDNs for its deliveries."""
        with self._read("listing MDNs") as conn:
            return [ReceiptRecord(*r) for r in conn.execute(_OF_MESSAGE, {"message_id": message_id}).all()]

    def due_async_mdns(self, *, limit: int = 50, now: float | None = None) -> list[ReceiptRecord]:
        """Async MDNs we owe partners whose (next) attempt is due, oldest first."""
        with self._read("listing async MDNs") as conn:
            return [ReceiptRecord(*r) for r in conn.execute(_DUE_ASYNC, {"now": now_or(now), "limit": limit}).all()]

    def requeue_async_mdn(self, receipt_id: str, *, reason: str, now: float | None = None) -> None:
        """Send an async MDN again, due now, with a fresh retry budget (the partner re-sent its message)."""
        at = now_or(now)
        with self._write("queueing an async MDN again") as conn:
            row = conn.execute(
                receipts.update().where(receipts.c.id == receipt_id)
                .values(status="pending", attempts=0, next_attempt_at=at, updated_at=at)
                .returning(receipts.c.message_id, receipts.c.partner, receipts.c.url)).first()
            if row is not None:
                self._add_event(conn, "mdn-delivery", "requeued", at=at, message_id=row[0], partner=row[1],
                                detail=f"async MDN to {row[2]} again: {reason}")

    def settle_async_mdn(self, receipt_id: str, *, sent: bool, error: str | None = None,
                         next_attempt_at: float | None = None, now: float | None = None) -> None:
        """After one attempt to POST an async MDN: done, retry at ``next_attempt_at``, or failed for good."""
        at = now_or(now)
        status = "done" if sent else ("pending" if next_attempt_at is not None else "failed")
        with self._write("recording an async MDN attempt") as conn:
            row = conn.execute(
                receipts.update().where(receipts.c.id == receipt_id)
                .values(status=status, attempts=receipts.c.attempts + 1, next_attempt_at=next_attempt_at,
                        error=error, updated_at=at)
                .returning(receipts.c.message_id, receipts.c.partner, receipts.c.url)).first()
            if row is None:
                return
            outcome = {"done": "ok", "pending": "retrying", "failed": "error"}[status]
            self._add_event(conn, "mdn-delivered" if sent else "mdn-delivery", outcome, at=at, message_id=row[0],
                            partner=row[1], detail=f"async MDN to {row[2]}" + (f": {error}" if error else ""))
