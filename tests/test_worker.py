"""The delivery worker in-process: fairness between targets, breaker hold-back, lease takeover."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from gateway.config import BreakerSettings, Target
from gateway.model import Channel, Document, Received
from gateway.outbound.rest import RestConnector
from gateway.retry import RetryPolicy
from gateway.store import Store
from gateway.worker import DeliveryWorker
from gateway.writer import BatchWriter


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path}/gw.db", tmp_path / "blobs")
    yield s
    s.close()


@pytest.fixture
async def http():
    """Real HTTP targets on 127.0.0.1: /fast answers at once, /slow after 1 s, /down with 503."""
    hits: dict[str, list[float]] = {"fast": [], "slow": [], "down": []}

    async def fast(request):
        hits["fast"].append(time.monotonic())
        return web.Response(text="ok")

    async def slow(request):
        await asyncio.sleep(1.0)
        hits["slow"].append(time.monotonic())
        return web.Response(text="ok")

    async def down(request):
        hits["down"].append(time.monotonic())
        return web.Response(status=503, text="maintenance")

    app = web.Application()
    app.router.add_post("/fast", fast)
    app.router.add_post("/slow", slow)
    app.router.add_post("/down", down)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


def rest_target(name: str, url: str, *, threshold: int = 5, reset: float = 30.0) -> Target:
    return Target(name=name, type="rest", options={"url": url, "timeout": 5},
                  retry=RetryPolicy(initial_delay=0.05, jitter=0.0, max_attempts=50),
                  breaker=BreakerSettings(failure_threshold=threshold, reset_seconds=reset))


def queue_documents(store: Store, target: str, count: int, tag: str) -> None:
    for n in range(count):
        raw = f"{tag}-{n}".encode()
        message = store.receive(Received(raw=raw, channel=Channel.CLI, partner="ACME", filename=f"{tag}{n}")).message
        key = f"{tag}{n:04d}".ljust(32, "0")
        envelope = {"id": f"doc_{key[:24]}", "idempotency_key": key, "type": "order", "document": {"number": tag}}
        store.record_processed(message.id, format="edifact", standard="ORDERS D96A", interchange=str(n),
                               documents=[Document("order", "ACME", key, envelope, tag, [target])])


def make_worker(store: Store, targets: dict[str, Target], *, owner: str = "node-a", workers: int = 4,
                per_target: int = 2) -> DeliveryWorker:
    connectors = {name: RestConnector(t, store.blobs.root) for name, t in targets.items()}
    return DeliveryWorker(store, BatchWriter(store), targets, connectors, owner=owner, workers=workers,
                          per_target=per_target, lease_seconds=10, poll_seconds=0.05)


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def stop(worker: DeliveryWorker) -> None:
    await worker.stop(grace=2)
    for connector in worker.connectors.values():
        await connector.close()


async def test_slow_target_does_not_starve_a_fast_one(store, http):
    base, hits = http
    queue_documents(store, "slow", 8, "S")
    queue_documents(store, "fast", 12, "F")   # queued later: behind the slow ones in time order
    worker = make_worker(store, {"slow": rest_target("slow", base + "/slow"),
                                 "fast": rest_target("fast", base + "/fast")}, workers=4, per_target=2)
    started = time.monotonic()
    worker.start()
    try:
        await wait_until(lambda: len(hits["fast"]) == 12, 5, "the fast target's 12 deliveries")
        elapsed = time.monotonic() - started
        # The slow target holds at most per_target=2 slots, so fast deliveries flow meanwhile.
        assert elapsed < 1.5, elapsed
        assert len(hits["slow"]) <= 2
        assert max(worker.in_flight.values()) <= 2
    finally:
        await stop(worker)


async def test_open_breaker_holds_deliveries_without_spending_attempts(store, http):
    base, hits = http
    queue_documents(store, "down", 6, "D")
    worker = make_worker(store, {"down": rest_target("down", base + "/down", threshold=2, reset=60)},
                         per_target=1)
    worker.start()
    try:
        await wait_until(lambda: len(hits["down"]) >= 2, 5, "two failures")
        await asyncio.sleep(1.0)   # retries are due every 0.05-0.1 s: only the breaker holds them
        assert len(hits["down"]) == 2
        attempts = sorted(d.attempts for d in store.deliveries(target="down"))
        assert sum(attempts) == 2, attempts
        assert worker.breakers["down"].state.value == "open"
        await wait_until(lambda: any(e.step == "breaker" and e.outcome == "open"
                                     for m in store.search_messages(partner="ACME")
                                     for e in store.timeline(m.id)), 5, "the breaker event in the log")
    finally:
        await stop(worker)


async def test_a_dead_nodes_claims_are_taken_over_after_the_lease(store, http):
    base, hits = http
    queue_documents(store, "fast", 3, "L")
    crashed = store.claim("dead-node", limit=10, lease_seconds=1.0)
    assert len(crashed) == 3
    worker = make_worker(store, {"fast": rest_target("fast", base + "/fast")}, owner="live-node")
    worker.start()
    try:
        await asyncio.sleep(0.5)
        assert hits["fast"] == [], "a valid lease must not be taken over"
        await wait_until(lambda: len(hits["fast"]) == 3, 5, "the taken-over deliveries")
        await wait_until(lambda: all(d.status == "delivered" for d in store.deliveries(target="fast")), 5,
                         "delivered status")
        assert [d.attempts for d in store.deliveries(target="fast")] == [2, 2, 2]
    finally:
        await stop(worker)
