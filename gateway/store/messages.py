"""Receiving messages (raw bytes first, duplicates made visible) and recording their documents."""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.errors import GatewayError, StoreError
from gateway.model import Channel, DeliveryStatus, Document, MessageStatus, Received
from gateway.store.base import StoreBase, new_id, now_or
from gateway.store.records import DocumentRecord, MessageRecord, ReceiveResult, from_row
from gateway.store.tables import deliveries, documents, messages

log = logging.getLogger(__name__)

# A failed original does not make a resend a duplicate: resending is how partners fix errors.
_ORIGINAL_STATUSES = (MessageStatus.RECEIVED.value, MessageStatus.PROCESSED.value)
_INSERT_MESSAGE = messages.insert()


def document_json(envelope: dict[str, Any]) -> bytes:
    """The canonical serialization of a document envelope (stable across replays)."""
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _same_partner(partner: str | None) -> sa.ColumnElement[bool]:
    # `= NULL` never matches; spell IS NULL out so the (partner, ...) indexes still apply.
    return messages.c.partner.is_(None) if partner is None else messages.c.partner == partner


_UPSERTS: dict[tuple, sa.Executable] = {}


def _upsert(conn: sa.Connection, table: sa.Table, keys: tuple[str, ...], update: tuple[str, ...],
            returning: str) -> sa.Executable:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET each of ``update`` to the new row's value.

    Built once per dialect and table; executed with a parameter dict.
    """
    cache_key = (conn.dialect.name, table.name, keys, update, returning)
    stmt = _UPSERTS.get(cache_key)
    if stmt is None:
        insert = pg_dialect.insert(table) if conn.dialect.name == "postgresql" else sqlite_dialect.insert(table)
        stmt = insert.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={name: insert.excluded[name] for name in update},
        ).returning(table.c[returning])
        _UPSERTS[cache_key] = stmt
    return stmt


class MessagesMixin(StoreBase):
    """receive / raw / message / pending_messages / record_processed / record_failed / documents."""

    def receive(self, received: Received, *, now: float | None = None) -> ReceiveResult:
        """Durably store bytes that arrived on a channel; acknowledge only after this returns.

        The raw bytes go to the blob store first, then one transaction inserts the message
        (status ``received``) and a "received" event. A message with the same partner,
        channel and non-empty ``source_ref`` is *recovered* (nothing new is stored); the same
        bytes from the same partner within ``duplicate_window`` seconds of a received or
        processed original are stored as a new message with status ``duplicate``.
        """
        at = now_or(now)
        channel = Channel(received.channel).value
        partner = received.partner
        sha = self.blobs.put(received.raw)
        with self._write("storing a received message") as conn:
            if received.source_ref:
                self._lock(conn, "source", partner, channel, received.source_ref)
            self._lock(conn, "content", partner, sha)
            if received.source_ref:
                row = conn.execute(
                    sa.select(messages)
                    .where(_same_partner(partner), messages.c.channel == channel)
                    .where(messages.c.source_ref == received.source_ref)
                    .order_by(messages.c.received_at, messages.c.id)
                    .limit(1)
                ).mappings().first()
                if row is not None:
                    existing = from_row(MessageRecord, row)
                    self._add_event(
                        conn, "received", "recovered", at=at, message_id=existing.id, partner=partner,
                        detail=f"{channel} {received.filename or '-'}: already stored as {existing.id} "
                        f"(source ref {received.source_ref})",
                    )
                    log.info("receive recovered %s", existing.id,
                             extra={"partner": partner, "message_id": existing.id})
                    return ReceiveResult(message=existing, recovered=True)
            original = conn.execute(
                sa.select(messages.c.id)
                .where(_same_partner(partner), messages.c.raw_sha256 == sha)
                .where(messages.c.status.in_(_ORIGINAL_STATUSES))
                .where(messages.c.received_at >= at - self.duplicate_window)
                .order_by(messages.c.received_at, messages.c.id)
                .limit(1)
            ).scalar()
            values = dict(
                id=new_id("msg", at),
                partner=partner,
                channel=channel,
                filename=received.filename,
                source_ref=received.source_ref,
                raw_sha256=sha,
                size=len(received.raw),
                status=(MessageStatus.DUPLICATE if original else MessageStatus.RECEIVED).value,
                duplicate_of=original,
                format="",
                standard="",
                interchange="",
                received_at=at,
                updated_at=at,
                error=None,
            )
            conn.execute(_INSERT_MESSAGE, values)
            detail = f"{channel} {received.filename or '-'} ({len(received.raw)} bytes)"
            if original:
                self._add_event(conn, "received", "duplicate", at=at, message_id=values["id"], partner=partner,
                                detail=f"{detail}: same content as {original}")
            else:
                self._add_event(conn, "received", "ok", at=at, message_id=values["id"], partner=partner,
                                detail=detail)
        record = from_row(MessageRecord, values)
        if original:
            log.info("receive duplicate of %s", original, extra={"partner": partner, "message_id": record.id})
        return ReceiveResult(message=record, duplicate_of=original)

    def raw(self, message_id: str) -> bytes:
        """The raw bytes of a message as received (hash-verified; BlobError if damaged)."""
        return self.blobs.get(self.message(message_id).raw_sha256)

    def message(self, message_id: str) -> MessageRecord:
        """One message; StoreError if there is none with this id."""
        with self._read("reading a message") as conn:
            row = conn.execute(sa.select(messages).where(messages.c.id == message_id)).mappings().first()
        if row is None:
            raise StoreError(f"unknown message {message_id!r}")
        return from_row(MessageRecord, row)

    def pending_messages(self) -> list[MessageRecord]:
        """Messages stored but not yet processed (status ``received``), oldest first.

        At start-up these are the messages a crash interrupted; the app runs them again.
        """
        with self._read("listing pending messages") as conn:
            rows = conn.execute(
                sa.select(messages)
                .where(messages.c.status == MessageStatus.RECEIVED.value)
                .order_by(messages.c.received_at, messages.c.id)
            ).mappings().all()
        return [from_row(MessageRecord, r) for r in rows]

    def record_processed(
        self,
        message_id: str,
        *,
        format: str,  # noqa: A002 - the column's name
        standard: str,
        interchange: str,
        documents: list[Document],
        partner: str | None = None,
        now: float | None = None,
    ) -> list[str]:
        """Store a message's documents and queue their deliveries, all in one transaction.

        Each document's JSON goes to the blob store first. Documents are upserted by
        idempotency key and deliveries by (document, target), so running this again for the
        same message (a replay) updates the rows and re-queues every delivery -- lease
        cleared, due now, attempt count kept -- instead of adding rows. Returns the ids of the
        deliveries queued, in document and target order. ``partner``, when given, is the
        partner the pipeline identified (e.g. from the interchange header) and is recorded on
        the message, which may not have known it when received.
        """
        at = now_or(now)
        prepared: list[tuple[int, Document, str, str]] = []
        for position, doc in enumerate(documents):
            doc_id = doc.envelope.get("id")
            if not isinstance(doc_id, str) or not doc_id:
                raise StoreError(f"message {message_id}: document {position} has no envelope id")
            try:
                body = document_json(doc.envelope)
            except (TypeError, ValueError) as e:
                raise StoreError(f"message {message_id}: document {doc_id} is not JSON-serializable: {e}") from e
            prepared.append((position, doc, doc_id, self.blobs.put(body)))

        queued: list[str] = []
        with self._write("recording a processed message") as conn:
            known = self._message_partner_for_update(conn, message_id)
            partner = partner or known
            for position, doc, doc_id, sha in prepared:
                self._upsert_document(conn, message_id, position, doc, doc_id, sha, at)
                self._add_event(conn, "mapped", "ok", at=at, message_id=message_id, document_id=doc_id,
                                partner=doc.partner, detail=f"{doc.type} {doc.number or '-'}")
                for target in dict.fromkeys(doc.targets):  # keeps order, drops repeats
                    delivery_id, new = self._upsert_delivery(conn, doc_id, doc.partner, target, at)
                    queued.append(delivery_id)
                    self._add_event(conn, "queued", "ok" if new else "requeued", at=at, message_id=message_id,
                                    document_id=doc_id, delivery_id=delivery_id, partner=doc.partner,
                                    detail=f"target {target}")
            conn.execute(
                messages.update()
                .where(messages.c.id == message_id)
                .values(status=MessageStatus.PROCESSED.value, partner=partner, format=format, standard=standard,
                        interchange=interchange, error=None, updated_at=at)
            )
            self._add_event(
                conn, "processed", "ok", at=at, message_id=message_id, partner=partner,
                detail=f"{format or '-'} {standard or '-'} interchange {interchange or '-'}: "
                f"{len(prepared)} document(s), {len(queued)} delivery(ies)",
            )
        return queued

    def record_failed(
        self,
        message_id: str,
        error: GatewayError,
        *,
        format: str = "",  # noqa: A002 - the column's name
        standard: str = "",
        now: float | None = None,
    ) -> None:
        """Mark a message failed with ``str(error)`` (it stays replayable) and log a "failed" event."""
        at = now_or(now)
        with self._write("recording a failed message") as conn:
            partner = self._message_partner_for_update(conn, message_id)
            values: dict[str, Any] = dict(status=MessageStatus.FAILED.value, error=str(error), updated_at=at)
            if format:
                values["format"] = format
            if standard:
                values["standard"] = standard
            conn.execute(messages.update().where(messages.c.id == message_id).values(**values))
            self._add_event(conn, "failed", "error", at=at, message_id=message_id, partner=partner,
                            detail=str(error))

    def documents_of(self, message_id: str) -> list[DocumentRecord]:
        """The documents recorded for a message, in the order the pipeline produced them."""
        with self._read("listing documents") as conn:
            rows = conn.execute(
                sa.select(documents)
                .where(documents.c.message_id == message_id)
                .order_by(documents.c.position, documents.c.id)
            ).mappings().all()
        return [from_row(DocumentRecord, r) for r in rows]

    def document_body(self, document_id: str) -> bytes:
        """The stored JSON of a document (hash-verified); StoreError for an unknown id."""
        with self._read("reading a document") as conn:
            sha = conn.execute(sa.select(documents.c.blob_sha256).where(documents.c.id == document_id)).scalar()
        if sha is None:
            raise StoreError(f"unknown document {document_id!r}")
        return self.blobs.get(sha)

    # -- helpers (run inside the caller's transaction) ----------------------------------

    @staticmethod
    def _message_partner_for_update(conn: sa.Connection, message_id: str) -> str | None:
        # FOR UPDATE (PostgreSQL) serialises two pipelines finishing the same message.
        row = conn.execute(
            sa.select(messages.c.partner).where(messages.c.id == message_id).with_for_update()
        ).first()
        if row is None:
            raise StoreError(f"unknown message {message_id!r}")
        return row.partner

    @staticmethod
    def _upsert_document(
        conn: sa.Connection, message_id: str, position: int, doc: Document, doc_id: str, sha: str, at: float
    ) -> None:
        stmt = _upsert(conn, documents, ("idempotency_key",), ("blob_sha256", "number", "updated_at"), "id")
        stored_id = conn.execute(stmt, dict(
            id=doc_id, message_id=message_id, partner=doc.partner, type=doc.type, number=doc.number,
            position=position, idempotency_key=doc.idempotency_key, blob_sha256=sha, created_at=at, updated_at=at,
        )).scalar_one()
        if stored_id != doc_id:
            raise StoreError(
                f"message {message_id}: idempotency key {doc.idempotency_key!r} already belongs to "
                f"document {stored_id!r}, not {doc_id!r}",
                partner=doc.partner,
            )

    @staticmethod
    def _upsert_delivery(conn: sa.Connection, doc_id: str, partner: str, target: str, at: float) -> tuple[str, bool]:
        proposed = new_id("dlv", at)
        # A replay re-queues: every column listed is reset to the value of the row proposed here.
        stmt = _upsert(conn, deliveries, ("document_id", "target"),
                       ("status", "next_attempt_at", "lease_owner", "lease_expires_at", "delivered_at", "updated_at"),
                       "id")
        stored_id = conn.execute(stmt, dict(
            id=proposed, document_id=doc_id, partner=partner, target=target, status=DeliveryStatus.QUEUED.value,
            attempts=0, next_attempt_at=at, lease_owner=None, lease_expires_at=None, delivered_at=None,
            created_at=at, updated_at=at,
        )).scalar_one()
        return stored_id, stored_id == proposed
