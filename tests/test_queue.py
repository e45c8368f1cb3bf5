"""The delivery queue: claims, leases and their expiry, settling, dead letters, concurrency.

Every test taking ``store`` runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from pathlib import Path

import pytest

from gateway.errors import StoreError
from gateway.model import Channel, DeliveryStatus, Document, Received
from gateway.store import Store

T0 = 1_700_000_000.0


def make_deliveries(store: Store, n_docs: int, *, targets: tuple[str, ...] = ("erp",), partner: str = "ACME",
                    now: float = T0, tag: str = "") -> list[str]:
    """One message with ``n_docs`` order documents, each queued to ``targets``."""
    msg = store.receive(Received(raw=f"msg {tag} {n_docs} {targets}".encode(), channel=Channel.API,
                                 partner=partner), now=now).message
    docs = [Document(type="order", partner=partner, idempotency_key=f"{tag}k{i}", number=f"PO-{i}",
                     envelope={"id": f"{tag}doc-{i}", "idempotency_key": f"{tag}k{i}", "n": i},
                     targets=list(targets))
            for i in range(n_docs)]
    return store.record_processed(msg.id, format="x12", standard="850", interchange="1", documents=docs, now=now)


def delivery_events(store: Store, delivery_id: str, message_id: str) -> list[tuple[str, str]]:
    return [(e.step, e.outcome) for e in store.timeline(message_id) if e.delivery_id == delivery_id]


# ------------------------------------------------------------------------------- claims


def test_claim_leases_due_deliveries_oldest_first(store: Store) -> None:
    late = make_deliveries(store, 1, now=T0 + 5, tag="late")
    early = make_deliveries(store, 2, now=T0, tag="early")
    claimed = store.claim("w1", limit=2, lease_seconds=30, now=T0 + 10)
    assert [c.delivery_id for c in claimed] == early
    c = claimed[0]
    assert (c.document_id, c.partner, c.target, c.document_type, c.idempotency_key, c.attempts, c.created_at) == (
        "earlydoc-0", "ACME", "erp", "order", "earlyk0", 1, T0)
    assert c.body == b'{"id":"earlydoc-0","idempotency_key":"earlyk0","n":0}'
    assert c.message_id == store.documents_of(c.message_id)[0].message_id
    d = store.delivery(c.delivery_id)
    assert (d.lease_owner, d.lease_expires_at, d.attempts, d.status) == ("w1", T0 + 40, 1, DeliveryStatus.QUEUED)
    assert [c.delivery_id for c in store.claim("w2", limit=5, lease_seconds=30, now=T0 + 10)] == late
    assert store.claim("w3", limit=5, lease_seconds=30, now=T0 + 10) == []


def test_not_yet_due_deliveries_are_not_claimed(store: Store) -> None:
    make_deliveries(store, 1, now=T0)
    assert store.claim("w1", limit=5, lease_seconds=30, now=T0 - 1) == []
    assert store.claim("w1", limit=0, lease_seconds=30, now=T0) == []
    assert len(store.claim("w1", limit=5, lease_seconds=30, now=T0)) == 1


def test_expired_lease_is_taken_over(store: Store) -> None:
    [dlv] = make_deliveries(store, 1, now=T0)
    [first] = store.claim("w1", limit=1, lease_seconds=60, now=T0)
    assert store.claim("w2", limit=1, lease_seconds=60, now=T0 + 59) == []
    [second] = store.claim("w2", limit=1, lease_seconds=60, now=T0 + 60)
    assert second.delivery_id == first.delivery_id == dlv
    assert (first.attempts, second.attempts) == (1, 2)
    # w1 wakes up late: its result no longer counts; w2's does.
    assert store.complete(dlv, "w1", duration_ms=10, http_status=200, now=T0 + 61) is False
    assert store.delivery(dlv).status is DeliveryStatus.QUEUED
    assert store.complete(dlv, "w2", duration_ms=12, http_status=201, now=T0 + 62) is True
    d = store.delivery(dlv)
    assert (d.status, d.delivered_at, d.last_http_status, d.lease_owner, d.attempts) == (
        DeliveryStatus.DELIVERED, T0 + 62, 201, None, 2)
    assert delivery_events(store, dlv, second.message_id) == [
        ("queued", "ok"), ("delivered", "lease-lost"), ("delivered", "ok")]


def test_exclude_targets(store: Store) -> None:
    make_deliveries(store, 2, targets=("erp", "wms", "edi-out"), now=T0)
    claimed = store.claim("w1", limit=10, lease_seconds=30, exclude_targets={"wms", "edi-out"}, now=T0)
    assert sorted(c.target for c in claimed) == ["erp", "erp"]
    claimed = store.claim("w1", limit=10, lease_seconds=30, exclude_targets=["wms"], now=T0)
    assert sorted(c.target for c in claimed) == ["edi-out", "edi-out"]
    assert len(store.claim("w1", limit=10, lease_seconds=30, now=T0)) == 2


def test_per_target_caps(store: Store) -> None:
    # erp's deliveries are the oldest: without caps they would fill the whole claim.
    make_deliveries(store, 6, targets=("erp",), now=T0, tag="e")
    make_deliveries(store, 3, targets=("wms",), now=T0 + 1, tag="w")
    make_deliveries(store, 3, targets=("sftp",), now=T0 + 2, tag="s")
    claimed = store.claim("w1", limit=6, lease_seconds=30, per_target={"erp": 2, "wms": 1, "sftp": 0}, now=T0 + 5)
    assert Counter(c.target for c in claimed) == {"erp": 2, "wms": 1}
    claimed = store.claim("w1", limit=3, lease_seconds=30, per_target={"erp": 1}, now=T0 + 5)
    assert Counter(c.target for c in claimed) == {"erp": 1, "wms": 2}  # wms is not capped here
    claimed = store.claim("w1", limit=10, lease_seconds=30, per_target={"erp": 5}, exclude_targets={"sftp"},
                          now=T0 + 5)
    assert Counter(c.target for c in claimed) == {"erp": 3}


# ------------------------------------------------------------------------------ settling


def test_complete_reschedule_bury_need_the_lease(store: Store) -> None:
    ids = make_deliveries(store, 3, now=T0)
    claimed = store.claim("w1", limit=3, lease_seconds=30, now=T0)
    msg_id = claimed[0].message_id
    a, b, c = (x.delivery_id for x in claimed)
    assert store.complete(a, "intruder", duration_ms=1, now=T0 + 1) is False
    assert store.reschedule(b, "intruder", next_attempt_at=T0 + 100, error="boom", now=T0 + 1) is False
    assert store.bury(c, "intruder", error="boom", now=T0 + 1) is False
    for dlv in ids:
        d = store.delivery(dlv)
        assert (d.status, d.lease_owner) == (DeliveryStatus.QUEUED, "w1")
        [(step, outcome)] = delivery_events(store, dlv, msg_id)[1:]
        assert outcome == "lease-lost"
    lost = [e for e in store.timeline(msg_id) if e.outcome == "lease-lost"]
    assert all("intruder" in e.detail and "w1" in e.detail for e in lost)
    with pytest.raises(StoreError, match="unknown delivery"):
        store.complete("dlv_nope", "w1", duration_ms=1)


def test_reschedule_makes_it_due_later(store: Store) -> None:
    [dlv] = make_deliveries(store, 1, now=T0)
    [c] = store.claim("w1", limit=1, lease_seconds=30, now=T0)
    assert store.reschedule(dlv, "w1", next_attempt_at=T0 + 120, error="HTTP 503 from erp", http_status=503,
                            duration_ms=40, now=T0 + 1)
    d = store.delivery(dlv)
    assert (d.status, d.next_attempt_at, d.last_error, d.last_http_status, d.lease_owner, d.attempts) == (
        DeliveryStatus.RETRYING, T0 + 120, "HTTP 503 from erp", 503, None, 1)
    assert store.claim("w1", limit=1, lease_seconds=30, now=T0 + 119) == []
    [again] = store.claim("w2", limit=1, lease_seconds=30, now=T0 + 120)
    assert again.attempts == 2
    event = store.timeline(c.message_id)[-1]
    assert (event.step, event.outcome, event.duration_ms) == ("retry-scheduled", "error", 40)
    for part in ("target erp", "attempt 1", "HTTP 503", "next attempt 2023-11-14T22:15:20", "HTTP 503 from erp"):
        assert part in event.detail


def test_bury_then_retry_dead(store: Store) -> None:
    [dlv] = make_deliveries(store, 1, now=T0)
    store.claim("w1", limit=1, lease_seconds=30, now=T0)
    store.reschedule(dlv, "w1", next_attempt_at=T0 + 1, error="timeout", now=T0)
    [c] = store.claim("w1", limit=1, lease_seconds=30, now=T0 + 1)
    assert store.bury(dlv, "w1", error="HTTP 400: bad order", http_status=400, duration_ms=7, now=T0 + 2)
    d = store.delivery(dlv)
    assert (d.status, d.attempts, d.last_error, d.lease_owner) == (DeliveryStatus.DEAD, 2, "HTTP 400: bad order", None)
    assert store.claim("w1", limit=5, lease_seconds=30, now=T0 + 1000) == []
    assert store.deliveries(status="dead") == [d]
    assert store.queue_depth() == {("ACME", "erp", DeliveryStatus.DEAD): 1}

    store.retry_dead(dlv, now=T0 + 500)
    d = store.delivery(dlv)
    assert (d.status, d.attempts, d.next_attempt_at) == (DeliveryStatus.QUEUED, 0, T0 + 500)
    [again] = store.claim("w2", limit=1, lease_seconds=30, now=T0 + 500)
    assert again.attempts == 1
    assert delivery_events(store, dlv, c.message_id)[-2:] == [("dead-lettered", "error"), ("dlq-retry", "ok")]
    with pytest.raises(StoreError, match="not dead"):
        store.retry_dead(dlv)
    with pytest.raises(StoreError, match="unknown delivery"):
        store.retry_dead("dlv_nope")


def test_settling_events_carry_message_document_and_partner(store: Store) -> None:
    """Every queue event lands in its message's timeline with the document and the delivery's partner."""
    msg = store.receive(Received(raw=b"no partner yet", channel=Channel.API, partner=None), now=T0).message
    doc = Document(type="order", partner="ACME", idempotency_key="k", number="PO-1",
                   envelope={"id": "doc-x", "idempotency_key": "k"}, targets=["erp"])
    [dlv] = store.record_processed(msg.id, format="x12", standard="850", interchange="1", documents=[doc], now=T0)
    store.claim("w1", limit=1, lease_seconds=30, now=T0)
    assert store.reschedule(dlv, "w1", next_attempt_at=T0 + 1, error="503", now=T0)
    assert not store.complete(dlv, "w2", duration_ms=1, now=T0 + 1)  # lease-lost
    store.claim("w1", limit=1, lease_seconds=30, now=T0 + 1)
    assert store.bury(dlv, "w1", error="400", now=T0 + 2)
    store.retry_dead(dlv, now=T0 + 3)
    store.claim("w1", limit=1, lease_seconds=30, now=T0 + 3)
    assert store.complete(dlv, "w1", duration_ms=1, now=T0 + 4)
    events = [e for e in store.timeline(msg.id) if e.delivery_id == dlv]
    assert [(e.step, e.outcome) for e in events] == [
        ("queued", "ok"), ("retry-scheduled", "error"), ("delivered", "lease-lost"), ("dead-lettered", "error"),
        ("dlq-retry", "ok"), ("delivered", "ok")]
    assert {(e.message_id, e.document_id, e.partner) for e in events} == {(msg.id, "doc-x", "ACME")}
    assert events[1].detail.startswith("target erp, attempt 1, next attempt ") and events[1].detail.endswith(": 503")
    assert [e.detail for e in events[2:]] == [
        "target erp, attempt 1 (by w2; the delivery is retrying, not leased)", "target erp, attempt 2: 400",
        "target erp: back in the queue", "target erp, attempt 1"]


def test_corrupt_document_blob_is_dead_lettered_on_claim(store: Store) -> None:
    first, second = make_deliveries(store, 2, now=T0)
    doc_id = store.delivery(first).document_id
    [msg] = store.search_messages()
    sha = next(d.blob_sha256 for d in store.documents_of(msg.id) if d.id == doc_id)
    store.blobs.path(sha).write_bytes(b"{}")
    claimed = store.claim("w1", limit=5, lease_seconds=30, now=T0)
    assert [c.delivery_id for c in claimed] == [second]
    d = store.delivery(first)
    assert d.status is DeliveryStatus.DEAD and sha in d.last_error and "corrupt" in d.last_error


def test_queue_depth_and_delivery_listing(store: Store) -> None:
    make_deliveries(store, 2, targets=("erp", "wms"), now=T0)
    make_deliveries(store, 1, targets=("erp",), partner="BETA", now=T0, tag="b")
    [c] = store.claim("w1", limit=1, lease_seconds=30, now=T0)
    store.complete(c.delivery_id, "w1", duration_ms=1, now=T0 + 1)
    assert store.queue_depth() == {
        ("ACME", "erp", DeliveryStatus.QUEUED): 1,
        ("ACME", "wms", DeliveryStatus.QUEUED): 2,
        ("BETA", "erp", DeliveryStatus.QUEUED): 1,
    }
    assert len(store.deliveries()) == 5
    assert [d.id for d in store.deliveries(status=DeliveryStatus.DELIVERED)] == [c.delivery_id]
    assert {d.partner for d in store.deliveries(partner="BETA")} == {"BETA"}
    assert {d.target for d in store.deliveries(target="wms")} == {"wms"}
    assert len(store.deliveries(limit=2)) == 2
    assert {(d.document_id, d.target) for d in store.deliveries(document_id="doc-1")} == {
        ("doc-1", "erp"), ("doc-1", "wms")}
    assert len(store.deliveries(message_id=c.message_id)) == 4
    assert store.deliveries()[0].id == c.delivery_id  # most recently changed first


# --------------------------------------------------------------------------- concurrency


def _claim_all(store: Store, owner: str, out: list[str], errors: list[BaseException]) -> None:
    try:
        idle = 0
        while idle < 3:
            batch = store.claim(owner, limit=2, lease_seconds=600)
            idle = 0 if batch else idle + 1
            for c in batch:
                out.append(c.delivery_id)
                if not store.complete(c.delivery_id, owner, duration_ms=0.1):
                    raise AssertionError(f"{owner} lost the lease of {c.delivery_id}")
    except BaseException as e:
        errors.append(e)


@pytest.mark.parametrize("shared_engine", [True, False], ids=["one-store", "two-stores"])
def test_concurrent_claims_from_two_threads(open_store, shared_engine: bool) -> None:  # noqa: ANN001
    first = open_store()
    second = first if shared_engine else open_store()
    ids = make_deliveries(first, 40, targets=("erp", "wms"))
    out: dict[str, list[str]] = {"a": [], "b": []}
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_claim_all, args=(s, name, out[name], errors))
               for s, name in ((first, "a"), (second, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    claimed = out["a"] + out["b"]
    assert sorted(claimed) == sorted(ids), Counter(claimed).most_common(3)
    assert {d.status for d in first.deliveries(limit=1000)} == {DeliveryStatus.DELIVERED}


def _process_worker(url: str, blob_dir: str, owner: str, n_receive: int, results) -> None:  # noqa: ANN001
    """Runs in a spawned process: receive + process some messages, then claim until idle."""
    try:
        store = Store.open(url, Path(blob_dir))
        try:
            for i in range(n_receive):
                make_deliveries(store, 2, tag=f"{owner}-{i}-")
            claimed: list[str] = []
            _errors: list[BaseException] = []
            _claim_all(store, owner, claimed, _errors)
            if _errors:
                raise _errors[0]
            results.put((owner, claimed, None))
        finally:
            store.close()
    except BaseException as e:  # report instead of dying silently
        results.put((owner, [], f"{type(e).__name__}: {e}"))


def test_concurrent_claims_from_two_processes(store: Store, store_url: str, blob_dir: Path) -> None:
    """Two OS processes write and claim on the same database: nothing is claimed twice or lost.

    On SQLite this is the "database is locked" scenario of DESIGN.md §7: it must not happen.
    """
    ids = make_deliveries(store, 30, targets=("erp", "wms"))
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(store_url, str(blob_dir), f"p{i}", 10, results))
             for i in range(2)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [r[2] for r in reports] == [None, None], reports
    # A process that went idle while the other was still producing left work behind: finish it.
    rest: list[str] = []
    errors: list[BaseException] = []
    _claim_all(store, "main", rest, errors)
    assert not errors, errors
    claimed = [dlv for r in reports for dlv in r[1]] + rest
    assert len(claimed) == len(set(claimed)), Counter(claimed).most_common(3)
    all_ids = {d.id for d in store.deliveries(limit=10_000)}
    assert len(all_ids) == len(ids) + 2 * 10 * 2
    assert set(claimed) == all_ids
    assert {d.status for d in store.deliveries(limit=10_000)} == {DeliveryStatus.DELIVERED}
