"""Store: outbound submissions and AS2 receipts (MDNs), on SQLite and PostgreSQL."""

from __future__ import annotations

from gateway.model import DeliveryStatus, MessageStatus
from gateway.store import Store

T0 = 1_800_000_000.0


def test_submit_outbound_queues_once_and_never_enters_the_inbound_pipeline(store: Store) -> None:
    message, delivery_id = store.submit_outbound(b"UNB+UNOC:3+X+Y'", partner="ACME", target="as2:ACME",
                                                 filename="inv-1.edi", now=T0)
    again, same = store.submit_outbound(b"UNB+UNOC:3+X+Y'", partner="ACME", target="as2:ACME",
                                        filename="inv-1.edi", now=T0 + 1)
    assert (again.id, same) == (message.id, delivery_id)
    assert message.status is MessageStatus.PROCESSED
    assert store.pending_messages() == []                 # a restart does not parse it as inbound EDI
    assert store.delivery(delivery_id).status is DeliveryStatus.QUEUED
    [claimed] = store.claim("node", lease_seconds=30, limit=5, now=T0 + 2)
    assert (claimed.body, claimed.document_number, claimed.target) == (b"UNB+UNOC:3+X+Y'", "inv-1.edi", "as2:ACME")
    steps = [(e.step, e.outcome) for e in store.timeline(message.id)]
    assert steps[:3] == [("submitted", "ok"), ("queued", "ok"), ("submitted", "duplicate")]


def test_a_receipt_is_stored_once_per_message_id_and_shown_with_its_message(store: Store) -> None:
    message, delivery_id = store.submit_outbound(b"payload", partner="ACME", target="as2:ACME", filename="f",
                                                 now=T0)
    first = store.add_receipt(direction="received", partner="ACME", as2_message_id="<a@b>",
                              disposition="processed/error: decryption-failed", signed=True, mode="sync",
                              delivery_id=delivery_id, entity=b"Content-Type: text/plain\r\n\r\nno", now=T0)
    assert not first.positive and store.blobs.get(first.blob_sha256).endswith(b"no")
    repeat = store.add_receipt(direction="received", partner="ACME", as2_message_id="<a@b>",
                               disposition="processed/error: decryption-failed", signed=True, mode="sync",
                               delivery_id=delivery_id, now=T0 + 1)
    assert repeat.id == first.id
    # A later attempt's positive MDN replaces the negative one: the message did get through.
    better = store.add_receipt(direction="received", partner="ACME", as2_message_id="<a@b>",
                               disposition="processed", signed=True, mode="sync", mic="abc, sha-256", mic_ok=True,
                               delivery_id=delivery_id, now=T0 + 2)
    assert (better.id, better.positive, better.mic_ok) == (first.id, True, True)
    assert [r.disposition for r in store.receipts_of(message.id)] == ["processed"]
    assert store.receipt_for("received", "ACME", "<a@b>") == better
    assert store.receipt_for("sent", "ACME", "<a@b>") is None
    assert store.receipt_for("received", "OTHER", "<a@b>") is None


def test_async_mdns_owed_are_due_until_settled(store: Store) -> None:
    owed = store.add_receipt(direction="sent", partner="ACME", as2_message_id="<m@p>", disposition="processed",
                             signed=False, mode="async", url="https://as2.acme.example/mdn", status="pending",
                             now=T0)
    assert [r.id for r in store.due_async_mdns(now=T0)] == [owed.id]
    store.settle_async_mdn(owed.id, sent=False, error="HTTP 503", next_attempt_at=T0 + 10, now=T0)
    assert store.due_async_mdns(now=T0 + 5) == []
    [retry] = store.due_async_mdns(now=T0 + 10)
    assert (retry.attempts, retry.error) == (1, "HTTP 503")
    store.settle_async_mdn(owed.id, sent=True, now=T0 + 11)
    assert store.due_async_mdns(now=T0 + 100) == []
    assert store.receipt(owed.id).status == "done"


def test_a_requeued_async_mdn_is_due_now_with_a_fresh_retry_budget(store: Store) -> None:
    owed = store.add_receipt(direction="sent", partner="ACME", as2_message_id="<r@p>", disposition="processed",
                             signed=False, mode="async", url="https://as2.acme.example/mdn", status="pending",
                             now=T0)
    for n in range(3):
        store.settle_async_mdn(owed.id, sent=False, error="HTTP 503", next_attempt_at=T0 + 1000, now=T0 + n)
    assert store.receipt(owed.id).attempts == 3 and store.due_async_mdns(now=T0 + 10) == []
    store.requeue_async_mdn(owed.id, reason="the partner sent the message again", now=T0 + 10)
    [due] = store.due_async_mdns(now=T0 + 10)
    assert (due.id, due.attempts, due.status) == (owed.id, 0, "pending")
