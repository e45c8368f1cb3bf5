"""Several `gateway serve` nodes on one PostgreSQL store: a node killed mid-way loses nothing."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from harness import GatewayProcess, drop, edifact_order, make_deployment, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NODES = 3
TOTAL = 2000


def make_node(home: Path, name: str, target_url: str, store_url: str, blobs: Path,
              recover_after: float = 300.0) -> GatewayProcess:
    """A node: its own deployment folder and inbox, the shared store URL and blob directory."""
    make_deployment(home, target_url, extra=f'node = "{name}"\nrecover_after_seconds = {recover_after}\n')
    config = home / "gateway.toml"
    config.write_text(config.read_text() + f'\n[store]\nurl = "{store_url}"\nblobs = "{blobs}"\n')
    return GatewayProcess(home)


def inbox(gw: GatewayProcess) -> Path:
    return gw.home / "var" / "inbox" / "ACME"


def pg_counts(url: str, sql: str) -> dict[str, int]:
    """``SELECT key, count(*) ... GROUP BY key`` as a dict, read straight from the database."""
    import psycopg

    from conftest import _libpq_url

    with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
        return {key: n for key, n in conn.execute(sql).fetchall()}


def schedule_holders(url: str) -> set[str]:
    """Nodes holding an unexpired schedule lease now (never more than one)."""
    return set(pg_counts(url, "SELECT owner, 1 FROM schedule_leases WHERE name = 'schedules' "
                              "AND expires_at > extract(epoch FROM now())"))


@pytest.fixture
def nodes(tmp_path, target, pg_url):
    from conftest import _empty_pg_tables

    _empty_pg_tables(pg_url)
    blobs = tmp_path / "shared-blobs"
    # The sweep takes over messages left "received" this long: short enough for the test. A message
    # two nodes both process is recorded once (record_processed only finishes a waiting message).
    started = [make_node(tmp_path / f"node-{n}", f"node-{n}", target.url, pg_url, blobs, recover_after=30)
               for n in range(NODES)]
    yield started
    for gw in started:
        gw.stop()


def test_three_nodes_2000_documents_kill_9_one_the_others_finish_exactly_once_by_key(target, nodes, pg_url):
    for gw in nodes:   # one after another: the first migrates the schema
        gw.start()
    victim, survivors = nodes[0], nodes[1:]
    begin = time.monotonic()
    for n in range(TOTAL):
        drop(inbox(nodes[n % NODES]), f"order-{n:04d}.edi", edifact_order(f"MN-{n:04d}", icr=str(n + 1)))

    # Kill the victim once it has stored every file of its inbox (a node's inbox is its own:
    # files still in it would wait for that node) but is still working through them.
    wait_for(lambda: len(target.received) >= TOTAL // 4 and not any(inbox(victim).iterdir()), 90,
             "a quarter delivered and the victim's inbox drained")
    assert schedule_holders(pg_url) == {"node-0"}, "the first node started should run the schedules"
    victim.kill()
    killed_at = len(target.received)
    assert killed_at < TOTAL, "the kill came too late to test anything"
    left = pg_counts(pg_url, "SELECT 'received', count(*) FROM messages WHERE status = 'received' UNION ALL "
                             "SELECT 'leased', count(*) FROM deliveries WHERE lease_owner = 'node-0' "
                             "AND status IN ('queued', 'retrying')")
    print(f"\nkilled node-0 after {time.monotonic() - begin:.1f} s with {killed_at} of {TOTAL} delivered; "
          f"left unprocessed (all nodes): {left['received']}, leased by node-0: {left['leased']}")

    def all_keys() -> bool:
        return len(set(target.keys())) >= TOTAL

    wait_for(all_keys, 150, f"{TOTAL} distinct idempotency keys at the target", interval=0.2)
    wait_for(lambda: pg_counts(pg_url, "SELECT status, count(*) FROM deliveries GROUP BY status")
             == {"delivered": TOTAL}, 30, "the queue to drain (every delivery delivered)", interval=0.2)
    elapsed = time.monotonic() - begin

    # Exactly once by key: each order arrived under one key, every key belongs to one order.
    keys_by_po: dict[str, set[str]] = {}
    for record in target.received:
        keys_by_po.setdefault(record["document"]["document"]["number"], set()).add(
            record["headers"]["Idempotency-Key"])
    assert sorted(keys_by_po) == [f"MN-{n:04d}" for n in range(TOTAL)]
    assert all(len(keys) == 1 for keys in keys_by_po.values()), "a document was delivered under two keys"
    keys = target.keys()
    assert len(set(keys)) == TOTAL
    redeliveries = len(keys) - TOTAL
    print(f"{TOTAL} documents on {NODES} nodes in {elapsed:.1f} s; redeliveries (same key): {redeliveries}; "
          f"most sends of one key: {max(Counter(keys).values())}")

    # Nothing lost, nothing left: every message processed, every inbox empty, survivors alive.
    assert pg_counts(pg_url, "SELECT status, count(*) FROM messages GROUP BY status") == {"processed": TOTAL}
    assert all(not any(inbox(gw).iterdir()) for gw in nodes)
    assert all(gw.proc.poll() is None for gw in survivors)

    # The schedules (SFTP polls, async MDNs, sweeps, callbacks) moved to exactly one survivor.
    wait_for(lambda: schedule_holders(pg_url) in ({"node-1"}, {"node-2"}), 45, "a survivor to take the schedules")
    taken = [gw for gw in survivors if "running the deployment's schedules on this node" in gw.log()]
    assert len(taken) == 1, [gw.home.name for gw in taken]


def test_a_node_starting_beside_a_busy_node_does_not_reprocess_its_messages(target, nodes, pg_url):
    busy, joining = nodes[0], nodes[1]
    busy.start()
    for n in range(400):
        drop(inbox(busy), f"order-{n:04d}.edi", edifact_order(f"JN-{n:04d}", icr=str(n + 1)))
    # Every file is stored (the inbox is empty) and most are still waiting to be processed.
    wait_for(lambda: not any(inbox(busy).iterdir()), 60, "the busy node to store its inbox")
    backlog = pg_counts(pg_url, "SELECT status, count(*) FROM messages GROUP BY status").get("received", 0)
    assert backlog >= 50, f"only {backlog} messages waiting: the node was not busy enough to test anything"
    joining.start()
    wait_for(lambda: len(set(target.keys())) >= 400, 90, "400 distinct keys at the target", interval=0.2)
    wait_for(lambda: pg_counts(pg_url, "SELECT status, count(*) FROM deliveries GROUP BY status")
             == {"delivered": 400}, 30, "the queue to drain", interval=0.2)
    processed_twice = pg_counts(pg_url, "SELECT message_id, count(*) FROM events WHERE step = 'processed' "
                                        "GROUP BY message_id HAVING count(*) > 1")
    keys = target.keys()
    assert (len(processed_twice), len(keys) - len(set(keys))) == (0, 0), \
        f"{len(processed_twice)} messages processed twice, {len(keys) - len(set(keys))} redeliveries"
