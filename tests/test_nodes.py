"""What several nodes share, on SQLite and PostgreSQL: the schedule lease, ordered claims, AS2 MICs, migration 0004."""

from __future__ import annotations

import asyncio
import threading

import sqlalchemy as sa

from gateway.model import Channel, Document, Received
from gateway.schedule import LEASE, Schedule
from gateway.store import Store

T0 = 1_800_000_000.0


def test_one_lease_holder_at_a_time_and_takeover_after_it_lapses(store: Store) -> None:
    assert store.hold_lease(LEASE, "node-a", seconds=30, now=T0)
    assert not store.hold_lease(LEASE, "node-b", seconds=30, now=T0 + 1)
    assert store.hold_lease(LEASE, "node-a", seconds=30, now=T0 + 10)       # renewed: to T0 + 40
    assert not store.hold_lease(LEASE, "node-b", seconds=30, now=T0 + 39)
    assert store.lease_holder(LEASE, now=T0 + 39) == "node-a"
    assert store.hold_lease(LEASE, "node-b", seconds=30, now=T0 + 40)       # node-a stopped renewing
    assert not store.hold_lease(LEASE, "node-a", seconds=30, now=T0 + 41)
    store.release_lease(LEASE, "node-a", now=T0 + 42)                       # not its lease: no effect
    assert store.lease_holder(LEASE, now=T0 + 42) == "node-b"
    store.release_lease(LEASE, "node-b", now=T0 + 43)                       # a clean stop
    assert store.lease_holder(LEASE, now=T0 + 43) is None
    assert store.hold_lease(LEASE, "node-a", seconds=30, now=T0 + 44)


def test_racing_nodes_never_both_hold_the_lease(open_store) -> None:  # noqa: ANN001
    stores = [open_store() for _ in range(4)]
    winners: list[str] = []
    barrier = threading.Barrier(len(stores))

    def race(n: int) -> None:
        barrier.wait()
        if stores[n].hold_lease(LEASE, f"node-{n}", seconds=30, now=T0):
            winners.append(f"node-{n}")

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1, winners


async def test_schedule_runs_on_one_node_and_moves_when_it_stops(open_store) -> None:  # noqa: ANN001
    a, b = Schedule(open_store(), "node-a", lease_seconds=0.6), Schedule(open_store(), "node-b", lease_seconds=0.6)
    await a.start()
    await b.start()
    try:
        assert a.holds() and not b.holds()
        await asyncio.sleep(0.5)          # a renews every 0.2 s: it keeps the schedules
        assert a.holds() and not b.holds()
        await a.stop()                    # releases the lease; b takes it at its next renewal
        await asyncio.sleep(0.5)
        assert b.holds() and not a.holds()
    finally:
        await a.stop()
        await b.stop()


def _queue(store: Store, tag: str, number: str, target: str, key: str | None) -> None:
    message = store.receive(Received(raw=tag.encode(), channel=Channel.CLI, partner="ACME", filename=tag),
                            now=T0).message
    idem = tag.ljust(32, "0")
    store.record_processed(message.id, format="edifact", standard="ORDERS D96A", interchange=tag, now=T0, documents=[
        Document("order", "ACME", idem, {"id": f"doc_{idem[:24]}", "idempotency_key": idem, "type": "order"},
                 number, [target], sequence={target: key} if key else {})])


def test_ordered_deliveries_are_claimed_one_at_a_time_per_key(store: Store) -> None:
    for tag, number in (("A0", "PO-A"), ("A1", "PO-A"), ("B0", "PO-B"), ("A2", "PO-A")):
        _queue(store, tag, number, "erp", f"ACME\x1f{number}")
    _queue(store, "U0", "PO-A", "erp", None)   # unordered: never waits
    claimed = store.claim("node-a", limit=10, lease_seconds=60, now=T0 + 1)
    assert sorted(c.document_number for c in claimed) == ["PO-A", "PO-A", "PO-B"]   # A0, B0 and U0
    # A second node sees nothing more in turn while A0 is leased.
    assert store.claim("node-b", limit=10, lease_seconds=60, now=T0 + 1) == []
    first_a = next(c for c in claimed if c.idempotency_key.startswith("A0"))
    for other in claimed:
        if other is not first_a:
            store.complete(other.delivery_id, "node-a", duration_ms=1, now=T0 + 2)
    store.reschedule(first_a.delivery_id, "node-a", next_attempt_at=T0 + 100, error="503", duration_ms=1, now=T0 + 2)
    assert store.claim("node-b", limit=10, lease_seconds=60, now=T0 + 50) == []    # A0 retrying: A1 waits
    [again] = store.claim("node-b", limit=10, lease_seconds=60, now=T0 + 100)
    assert again.idempotency_key.startswith("A0")
    store.complete(again.delivery_id, "node-b", duration_ms=1, now=T0 + 101)
    [a1] = store.claim("node-b", limit=10, lease_seconds=60, now=T0 + 101)
    assert a1.idempotency_key.startswith("A1")
    store.bury(a1.delivery_id, "node-b", error="refused", now=T0 + 102)             # dead: A2 may go
    [a2] = store.claim("node-b", limit=10, lease_seconds=60, now=T0 + 102)
    assert a2.idempotency_key.startswith("A2")


def test_a_sent_mic_is_found_by_any_node_and_pruned(open_store) -> None:  # noqa: ANN001
    sender, receiver = open_store(), open_store()
    sender.remember_sent_mic("ACME", "<gw-1@US>", mic="abc=", mic_algorithm="sha-256", delivery_id="dlv_1", now=T0)
    assert receiver.sent_mic("ACME", "<gw-1@US>") == ("abc=", "sha-256", "dlv_1")
    assert receiver.sent_mic("OTHER", "<gw-1@US>") is None      # partners never see each other's sends
    sender.remember_sent_mic("ACME", "<gw-1@US>", mic="def=", mic_algorithm="sha-256", delivery_id="dlv_2", now=T0)
    assert receiver.sent_mic("ACME", "<gw-1@US>") == ("def=", "sha-256", "dlv_2")   # the latest attempt's
    assert receiver.forget_sent_mics(T0 + 1) == 1
    assert receiver.sent_mic("ACME", "<gw-1@US>") is None


def test_migration_0004_down_and_up(tmp_path) -> None:
    from alembic import command

    from gateway.store.engine import _alembic_config

    with Store.open(f"sqlite:///{tmp_path / 'g.sqlite'}", tmp_path / "blobs") as store:
        tables = {"schedule_leases", "api_submissions", "as2_sent"}
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0003")
        inspector = sa.inspect(store.engine)
        assert not tables & set(inspector.get_table_names())
        assert "sequence_key" not in {c["name"] for c in inspector.get_columns("deliveries")}
        store.migrate()
        inspector = sa.inspect(store.engine)
        assert store.schema_revision() == "0005" and tables <= set(inspector.get_table_names())
        assert "sequence_key" in {c["name"] for c in inspector.get_columns("deliveries")}
