"""Receiving messages (raw bytes first, duplicates made visible) and recording their documents."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.errors import GatewayError, StoreError
from gateway.model import Channel, DeliveryStatus, Document, MessageStatus, Received
from gateway.store.base import (
    DOCUMENT_COLUMNS,
    MESSAGE_COLUMNS,
    StoreBase,
    constant,
    constant_in,
    event_row,
    new_id,
    now_or,
)
from gateway.store.records import DocumentRecord, MessageRecord, ReceiveResult, document_record, message_record
from gateway.store.tables import deliveries, documents, interchanges_seen, messages

log = logging.getLogger(__name__)

# A failed original does not make a resend a duplicate: resending is how partners fix errors.
_ORIGINAL_STATUSES = (MessageStatus.RECEIVED.value, MessageStatus.PROCESSED.value)
_RECEIVED = MessageStatus.RECEIVED.value
_DUPLICATE = MessageStatus.DUPLICATE.value
_PROCESSED = MessageStatus.PROCESSED.value
_FAILED = MessageStatus.FAILED.value
_QUEUED = DeliveryStatus.QUEUED.value


def document_json(envelope: dict[str, Any]) -> bytes:
    """The canonical serialization of a document envelope (stable across replays)."""
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- statements, built once (see gateway.store.base) -------------------------------------

_INSERT_MESSAGE = messages.insert()
_SELECT_MESSAGE = sa.select(*MESSAGE_COLUMNS).where(messages.c.id == sa.bindparam("message_id"))
_SELECT_RAW_SHA = sa.select(messages.c.raw_sha256).where(messages.c.id == sa.bindparam("message_id"))
_SELECT_PENDING = (
    sa.select(*MESSAGE_COLUMNS)
    .where(messages.c.status == constant(_RECEIVED))
    .order_by(messages.c.received_at, messages.c.id)
)
_SELECT_DOCUMENTS_OF = (
    sa.select(*DOCUMENT_COLUMNS)
    .where(documents.c.message_id == sa.bindparam("message_id"))
    .order_by(documents.c.position, documents.c.id)
)
_SELECT_DOCUMENT_SHA = sa.select(documents.c.blob_sha256).where(documents.c.id == sa.bindparam("document_id"))


def _receive_check(partner_known: bool, with_source: bool) -> sa.Select:
    """One round trip for receive's two questions, each the first match by (received_at, id).

    ``recovered``: the message stored earlier under this partner, channel and source ref;
    ``original``: the received/processed message with the same bytes in the duplicate window.
    The partner test is ``= :partner`` or ``IS NULL`` (``= NULL`` never matches), spelled out
    so the (partner, ...) indexes still apply; hence a variant per case.

    ``received_at + 0`` is received_at, but no index can serve it: without it SQLite (which
    has no statistics) walks ix_messages_partner_received_at -- every message the partner
    ever sent -- to spare sorting the one or two rows that the (partner, channel, source_ref)
    and (partner, raw_sha256) indexes find.
    """
    received_at = messages.c.received_at + sa.literal_column("0")

    def same_partner() -> sa.ColumnElement[bool]:
        return messages.c.partner == sa.bindparam("partner") if partner_known else messages.c.partner.is_(None)

    original = (
        sa.select(messages.c.id)
        .where(same_partner(), messages.c.raw_sha256 == sa.bindparam("sha"))
        .where(constant_in(messages.c.status, _ORIGINAL_STATUSES))
        .where(received_at >= sa.bindparam("since", type_=sa.Double))
        .order_by(received_at, messages.c.id)
        .limit(1)
        .scalar_subquery()
        .label("original")
    )
    if not with_source:
        return sa.select(sa.null().label("recovered"), original)
    recovered = (
        sa.select(messages.c.id)
        .where(same_partner(), messages.c.channel == sa.bindparam("channel"))
        .where(messages.c.source_ref == sa.bindparam("source_ref"))
        .order_by(received_at, messages.c.id)
        .limit(1)
        .scalar_subquery()
        .label("recovered")
    )
    return sa.select(recovered, original)


_RECEIVE_CHECKS = {(known, source): _receive_check(known, source)
                   for known in (False, True) for source in (False, True)}

# record_processed: finish the message first. The UPDATE takes the row lock that serialises two
# pipelines finishing the same message (PostgreSQL), tells an unknown id by matching no row,
# and returns the partner to record: the one the pipeline found, else the one already known.
_FINISH_MESSAGE = (
    messages.update()
    .where(messages.c.id == sa.bindparam("message_id"))
    .values(status=constant(_PROCESSED),
            partner=sa.func.coalesce(sa.bindparam("found_partner", type_=messages.c.partner.type), messages.c.partner),
            format=sa.bindparam("p_format"), standard=sa.bindparam("p_standard"),
            interchange=sa.bindparam("p_interchange"), error=sa.null(), updated_at=sa.bindparam("at"))
    .returning(messages.c.partner)
)
# The server's own processing finishes only a message still waiting: if another node (or the
# sweep on this one) finished it meanwhile, the second result is dropped instead of re-queueing
# deliveries that may already be delivered. A replay uses _FINISH_MESSAGE.
_FINISH_PENDING = _FINISH_MESSAGE.where(messages.c.status == constant(_RECEIVED))


def _fail_message(set_format: bool, set_standard: bool) -> sa.Update:
    values: dict[str, Any] = dict(status=constant(_FAILED), error=sa.bindparam("p_error"),
                                  updated_at=sa.bindparam("at"))
    if set_format:
        values["format"] = sa.bindparam("p_format")
    if set_standard:
        values["standard"] = sa.bindparam("p_standard")
    return (messages.update().where(messages.c.id == sa.bindparam("message_id")).values(**values)
            .returning(messages.c.partner))


_FAIL_MESSAGE = {(f, s): _fail_message(f, s) for f in (False, True) for s in (False, True)}


def _upserts(table: sa.Table, keys: tuple[str, ...], update: tuple[str, ...], returning: str) -> dict[str, sa.Insert]:
    """Per dialect: INSERT ... ON CONFLICT (keys) DO UPDATE SET each of ``update`` to the new row's value."""
    built = {}
    for name, insert in (("postgresql", pg_dialect.insert(table)), ("sqlite", sqlite_dialect.insert(table))):
        built[name] = insert.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={column: insert.excluded[column] for column in update},
        ).returning(table.c[returning])
    return built


_UPSERT_DOCUMENT = _upserts(documents, ("idempotency_key",), ("blob_sha256", "number", "updated_at"), "id")
# A replay re-queues: every column listed is reset to the value of the row proposed here.
_UPSERT_DELIVERY = _upserts(
    deliveries, ("document_id", "target"),
    ("status", "next_attempt_at", "lease_owner", "lease_expires_at", "delivered_at", "sequence_key", "updated_at"),
    "id")


def _upsert_seen() -> dict[str, sa.Insert]:
    """Per dialect: remember an inbound interchange control number (refreshing carrier and time)."""
    built = {}
    for name, insert in (("postgresql", pg_dialect.insert(interchanges_seen)),
                         ("sqlite", sqlite_dialect.insert(interchanges_seen))):
        built[name] = insert.on_conflict_do_update(
            index_elements=[interchanges_seen.c[k] for k in ("partner", "format", "sender", "control_number")],
            set_={"message_id": insert.excluded.message_id, "seen_at": insert.excluded.seen_at})
    return built


# Shared with gateway.store.edi (record_interchanges): one statement, two callers.
UPSERT_SEEN = _upsert_seen()


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
        source_ref = received.source_ref
        raw = received.raw
        # Callers store the blob first, outside the (single) writer thread, and pass its id: then a
        # large payload is not hashed a second time while every other write waits.
        given = received.raw_sha256
        sha = given if given and self.blobs.holds(given, len(raw)) else self.blobs.put(raw)
        with self._write("storing a received message", durable=True) as conn:
            if source_ref:
                self._lock(conn, ("source", partner, channel, source_ref), ("content", partner, sha))
            else:
                self._lock(conn, ("content", partner, sha))
            recovered, original = conn.execute(
                _RECEIVE_CHECKS[partner is not None, bool(source_ref)],
                {"partner": partner, "channel": channel, "source_ref": source_ref, "sha": sha,
                 "since": at - self.duplicate_window},
            ).one()
            if recovered is not None:
                existing = message_record(conn.execute(_SELECT_MESSAGE, {"message_id": recovered}).one())
                self._insert_events(conn, event_row(
                    "received", "recovered", at, existing.id, None, None, partner,
                    detail=f"{channel} {received.filename or '-'}: already stored as {existing.id} "
                    f"(source ref {source_ref})",
                ))
                log.info("receive recovered %s", existing.id, extra={"partner": partner, "message_id": existing.id})
                return ReceiveResult(message=existing, recovered=True)
            record = MessageRecord(
                id=new_id("msg", at),
                partner=partner,
                channel=channel,
                filename=received.filename,
                source_ref=source_ref,
                raw_sha256=sha,
                size=len(raw),
                status=MessageStatus.DUPLICATE if original else MessageStatus.RECEIVED,
                duplicate_of=original,
                format="",
                standard="",
                interchange="",
                received_at=at,
                updated_at=at,
                error=None,
            )
            conn.execute(_INSERT_MESSAGE, {
                "id": record.id, "partner": partner, "channel": channel, "filename": record.filename,
                "source_ref": source_ref, "raw_sha256": sha, "size": record.size,
                "status": _DUPLICATE if original else _RECEIVED, "duplicate_of": original, "format": "",
                "standard": "", "interchange": "", "received_at": at, "updated_at": at, "error": None,
            })
            detail = f"{channel} {received.filename or '-'} ({len(raw)} bytes)"
            if original:
                self._insert_events(conn, event_row("received", "duplicate", at, record.id, None, None, partner,
                                                    detail=f"{detail}: same content as {original}"))
            else:
                self._insert_events(conn, event_row("received", "ok", at, record.id, None, None, partner,
                                                    detail=detail))
        if original:
            log.info("receive duplicate of %s", original, extra={"partner": partner, "message_id": record.id})
        return ReceiveResult(message=record, duplicate_of=original)

    def raw(self, message_id: str) -> bytes:
        """The raw bytes of a message as received (hash-verified; BlobError if damaged)."""
        with self._read("reading a message") as conn:
            sha = conn.execute(_SELECT_RAW_SHA, {"message_id": message_id}).scalar()
        if sha is None:
            raise StoreError(f"unknown message {message_id!r}")
        return self.blobs.get(sha)

    def message(self, message_id: str) -> MessageRecord:
        """One message; StoreError if there is none with this id."""
        with self._read("reading a message") as conn:
            row = conn.execute(_SELECT_MESSAGE, {"message_id": message_id}).first()
        if row is None:
            raise StoreError(f"unknown message {message_id!r}")
        return message_record(row)

    def pending_messages(self) -> list[MessageRecord]:
        """Messages stored but not yet processed (status ``received``), oldest first.

        At start-up these are the messages a crash interrupted; the app runs them again.
        """
        with self._read("listing pending messages") as conn:
            rows = conn.execute(_SELECT_PENDING).all()
        return [message_record(r) for r in rows]

    def record_processed(
        self,
        message_id: str,
        *,
        format: str,  # noqa: A002 - the column's name
        standard: str,
        interchange: str,
        documents: list[Document],
        partner: str | None = None,
        control_numbers: Sequence[tuple[str, str]] = (),
        only_pending: bool = False,
        now: float | None = None,
    ) -> list[str] | None:
        """Store a message's documents and queue their deliveries, all in one transaction.

        Each document's JSON goes to the blob store first. Documents are upserted by
        idempotency key and deliveries by (document, target), so running this again for the
        same message (a replay) updates the rows and re-queues every delivery -- lease
        cleared, due now, attempt count kept -- instead of adding rows. Returns the ids of the
        deliveries queued, in document and target order. ``partner``, when given, is the
        partner the pipeline identified (e.g. from the interchange header) and is recorded on
        the message, which may not have known it when received. ``control_numbers``: the
        (sender, interchange control number) pairs the message carried, remembered in the same
        transaction for duplicate detection (see ``EdiMixin.seen_interchanges``).
        ``only_pending`` (the server's processing, not a replay): record nothing and return None
        when the message is no longer "received" -- someone else processed it already.
        """
        at = now_or(now)
        prepared: list[tuple[int, Document, str, str]] = []
        for position, doc in enumerate(documents):
            doc_id = doc.envelope.get("id")
            if not isinstance(doc_id, str) or not doc_id:
                raise StoreError(f"message {message_id}: document {position} has no envelope id")
            try:
                body = doc.body if doc.body is not None else document_json(doc.envelope)
            except (TypeError, ValueError) as e:
                raise StoreError(f"message {message_id}: document {doc_id} is not JSON-serializable: {e}") from e
            prepared.append((position, doc, doc_id, self.blobs.put(body)))

        queued: list[str] = []
        with self._write("recording a processed message") as conn:
            dialect = conn.dialect.name
            row = conn.execute(_FINISH_PENDING if only_pending else _FINISH_MESSAGE, {
                "message_id": message_id, "found_partner": partner or None, "p_format": format,
                "p_standard": standard, "p_interchange": interchange, "at": at,
            }).first()
            if row is None:
                if only_pending and conn.execute(sa.select(messages.c.id).where(
                        messages.c.id == message_id)).first() is not None:
                    return None
                raise StoreError(f"unknown message {message_id!r}")
            partner = row[0]
            if control_numbers and partner is not None:
                conn.execute(UPSERT_SEEN[dialect], [
                    {"partner": partner, "format": format, "sender": sender, "control_number": number,
                     "message_id": message_id, "seen_at": at} for sender, number in dict.fromkeys(control_numbers)])
            upsert_document, upsert_delivery = _UPSERT_DOCUMENT[dialect], _UPSERT_DELIVERY[dialect]
            # Events are inserted together at the end, in the order they happened.
            logged: list[dict] = []
            for position, doc, doc_id, sha in prepared:
                stored_id = conn.execute(upsert_document, {
                    "id": doc_id, "message_id": message_id, "partner": doc.partner, "type": doc.type,
                    "number": doc.number, "position": position, "idempotency_key": doc.idempotency_key,
                    "blob_sha256": sha, "created_at": at, "updated_at": at,
                }).scalar_one()
                if stored_id != doc_id:
                    raise StoreError(
                        f"message {message_id}: idempotency key {doc.idempotency_key!r} already belongs to "
                        f"document {stored_id!r}, not {doc_id!r}",
                        partner=doc.partner,
                    )
                logged.append(event_row("mapped", "ok", at, message_id, doc_id, None, doc.partner,
                                        detail=f"{doc.type} {doc.number or '-'}"))
                for target in dict.fromkeys(doc.targets):  # keeps order, drops repeats
                    proposed = new_id("dlv", at)
                    delivery_id = conn.execute(upsert_delivery, {
                        "id": proposed, "document_id": doc_id, "partner": doc.partner, "target": target,
                        "status": _QUEUED, "attempts": 0, "next_attempt_at": at, "lease_owner": None,
                        "lease_expires_at": None, "delivered_at": None, "created_at": at, "updated_at": at,
                        "sequence_key": doc.sequence.get(target),
                    }).scalar_one()
                    queued.append(delivery_id)
                    logged.append(event_row("queued", "ok" if delivery_id == proposed else "requeued", at,
                                            message_id, doc_id, delivery_id, doc.partner, detail=f"target {target}"))
            logged.append(event_row(
                "processed", "ok", at, message_id, None, None, partner,
                detail=f"{format or '-'} {standard or '-'} interchange {interchange or '-'}: "
                f"{len(prepared)} document(s), {len(queued)} delivery(ies)",
            ))
            self._insert_events(conn, logged)
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
        text = str(error)
        with self._write("recording a failed message") as conn:
            # The UPDATE takes the row lock (PostgreSQL) and returns the partner; no row: unknown id.
            row = conn.execute(_FAIL_MESSAGE[bool(format), bool(standard)], {
                "message_id": message_id, "p_error": text, "p_format": format, "p_standard": standard, "at": at,
            }).first()
            if row is None:
                raise StoreError(f"unknown message {message_id!r}")
            self._insert_events(conn, event_row("failed", "error", at, message_id, None, None, row[0],
                                                detail=text))

    def documents_of(self, message_id: str) -> list[DocumentRecord]:
        """The documents recorded for a message, in the order the pipeline produced them."""
        with self._read("listing documents") as conn:
            rows = conn.execute(_SELECT_DOCUMENTS_OF, {"message_id": message_id}).all()
        return [document_record(r) for r in rows]

    def document_body(self, document_id: str) -> bytes:
        """The stored JSON of a document (hash-verified); StoreError for an unknown id."""
        with self._read("reading a document") as conn:
            sha = conn.execute(_SELECT_DOCUMENT_SHA, {"document_id": document_id}).scalar()
        if sha is None:
            raise StoreError(f"unknown document {document_id!r}")
        return self.blobs.get(sha)
