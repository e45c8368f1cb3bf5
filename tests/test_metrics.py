"""/metrics, /health and /ready on a real gateway (in-process, SQLite, a real REST target on 127.0.0.1).

The scripted run drops orders into ACME's inbox -- some the target accepts, some it refuses
for good, one file that is not EDI, one repeated file -- and checks that every counter per
partner and outcome says exactly what happened, and that the gauges agree with the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import Gateway, open_store
from gateway.config import load_deployment
from harness import drop, edifact_order, make_deployment

TOKEN = "metrics-test-token-0123456789"
HTTP = '[http]\nhost = "127.0.0.1"\nport = 0\n[api]\nenabled = true\ntokens = ["env:M7_API_TOKEN"]\n'
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def gw(tmp_path, monkeypatch, target):
    monkeypatch.setenv("M7_API_TOKEN", TOKEN)
    monkeypatch.setenv("GW_HARNESS_SECRET", "whsec_aGFybmVzcy1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZiE=")
    deployment = load_deployment(make_deployment(tmp_path / "home", target.url, extra="\n" + HTTP,
                                                 retry="max_attempts = 3\ninitial_delay = 0.05\njitter = 0"))
    store = await asyncio.to_thread(open_store, deployment)
    gateway = Gateway(deployment, store)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()
        store.close()


async def get(gw: Gateway, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as client, client.get(gw.http.url + path) as resp:
        return resp.status, await resp.text(), resp.headers.get("Content-Type", "")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def until(condition, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_metrics_count_what_happened_per_partner_and_outcome(gw, target):
    target.mode = lambda document: 400 if document["document"]["number"].startswith("BAD") else 200
    inbox = gw.deployment.partners["ACME"].inbox
    good = [edifact_order(f"PO-{n}") for n in range(3)]
    for n, raw in enumerate(good):
        drop(inbox, f"good-{n}.edi", raw)
    for n in range(2):
        drop(inbox, f"bad-{n}.edi", edifact_order(f"BAD-{n}"))
    drop(inbox, "garbage.edi", b"this is not EDI at all\n")

    async def settled() -> bool:
        rows = await asyncio.to_thread(gw.store.search_messages)
        depth = await asyncio.to_thread(gw.store.queue_depth)
        return (len(rows) == 6 and all(m.status.value != "received" for m in rows)
                and len(target.attempts) == 5 and all(s.value == "dead" for (_, _, s) in depth))
    await until(settled, "six messages handled and five deliveries settled")
    drop(inbox, "good-0-again.edi", good[0])    # the same bytes again: a duplicate, not processed
    await until(lambda: _count(gw, "duplicate", 1), "the repeated file stored as a duplicate")

    status, text, content_type = await get(gw, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    found = samples(text)
    assert value(found, "gateway_messages_received_total", partner="ACME", channel="inbox") == 7
    assert value(found, "gateway_messages_processed_total", partner="ACME", format="edifact", outcome="processed") == 5
    assert value(found, "gateway_messages_processed_total", partner="ACME", format="unknown", outcome="failed") == 1
    assert value(found, "gateway_messages_processed_total", partner="ACME", format="unknown", outcome="duplicate") == 1
    assert value(found, "gateway_documents_total", partner="ACME", document_type="order") == 5
    deliveries = {outcome: value(found, "gateway_deliveries_total", target="erp", partner="ACME",
                                 document_type="order", outcome=outcome) for outcome in ("delivered", "retry", "dead")}
    assert deliveries == {"delivered": 3, "retry": 0, "dead": 2}
    assert value(found, "gateway_delivery_duration_seconds_count", target="erp") == 5
    assert value(found, "gateway_receipt_to_delivery_seconds_count", partner="ACME", document_type="order") == 3
    assert value(found, "gateway_receipt_to_delivery_seconds_sum", partner="ACME", document_type="order") > 0
    # Gauges read from the store and the worker at scrape time.
    assert value(found, "gateway_queue_depth", partner="ACME", target="erp", status="dead") == 2
    assert value(found, "gateway_store_up") == 1
    assert ("gateway_breaker_state", (("target", "erp"),)) in found
    assert value(found, "gateway_breaker_state", target="erp") == 0
    # ... and they agree with the store's own record of the run.
    rows = await asyncio.to_thread(gw.store.search_messages)
    by_status = {s: sum(1 for m in rows if m.status.value == s) for s in ("processed", "failed", "duplicate")}
    assert by_status == {"processed": 5, "failed": 1, "duplicate": 1}
    assert [s for _, s, _ in target.attempts].count(200) == 3


async def _count(gw: Gateway, status: str, wanted: int) -> bool:
    rows = await asyncio.to_thread(gw.store.search_messages, status=status)
    return len(rows) == wanted


async def test_transient_failures_count_as_retries_then_dead(gw, target):
    target.mode = 503    # retried: max_attempts = 3, then dead
    drop(gw.deployment.partners["ACME"].inbox, "po.edi", edifact_order("PO-RETRY"))

    async def dead() -> bool:
        depth = await asyncio.to_thread(gw.store.queue_depth)
        return any(status.value == "dead" for (_, _, status) in depth)
    await until(dead, "the delivery to give up")
    found = samples((await get(gw, "/metrics"))[1])
    counts = {outcome: value(found, "gateway_deliveries_total", target="erp", partner="ACME",
                             document_type="order", outcome=outcome) for outcome in ("delivered", "retry", "dead")}
    assert counts == {"delivered": 0, "retry": 2, "dead": 1}
    assert value(found, "gateway_receipt_to_delivery_seconds_count", partner="ACME", document_type="order") == 0


async def test_metrics_can_be_closed_to_an_address_or_switched_off(gw):
    allowed = gw.metrics.settings
    gw.metrics.settings = dataclasses.replace(allowed, metrics_allow=(ipaddress.ip_network("10.0.0.0/8"),))
    status, text, _ = await get(gw, "/metrics")
    assert status == 403 and "metrics_allow" in text and "gateway_" not in text
    gw.metrics.settings = allowed
    assert (await get(gw, "/metrics"))[0] == 200
    off = dataclasses.replace(allowed, metrics=False)
    assert gw.metrics.routes() and not type(gw.metrics)(off, gw.store, gw.deployment).routes()


async def test_health_and_ready_follow_the_store(gw):
    assert (await get(gw, "/health"))[:2] == (200, "ok\n")
    status, body, _ = await get(gw, "/ready")
    assert status == 200 and json.loads(body) == {"status": "ready"}
    database = gw.settings.store.url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:   # the store loses its messages table: it cannot answer
        db.execute("ALTER TABLE messages RENAME TO messages_away")
    try:
        status, body, _ = await get(gw, "/ready")
        assert status == 503
        answer = json.loads(body)
        assert answer == {"status": "not ready", "problems": {"store": "unreachable"}}
        assert (await get(gw, "/health"))[0] == 200    # alive all the same: nothing to restart
    finally:
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE messages_away RENAME TO messages")
    status, body, _ = await get(gw, "/ready")
    assert status == 200 and json.loads(body) == {"status": "ready"}


async def test_ready_names_a_listener_that_is_down(gw):
    await gw.watcher.stop()
    status, body, _ = await get(gw, "/ready")
    assert status == 503 and json.loads(body)["problems"] == {"inbox watcher": "not watching"}


def test_processes_add_up_their_counts_through_the_shared_directory(tmp_path):
    """[server] processes > 1: each process counts into the directory; whichever answers the scrape sums them."""
    home = make_deployment(tmp_path / "home", "http://127.0.0.1:9/orders")
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"stale")   # an earlier run's file: removed by the primary
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        import prometheus_client   # imported first, as in `gateway serve`: the value class is switched after
        from gateway.app import open_store
        from gateway.config import load_deployment
        from gateway.metrics import Metrics, use_multiprocess_dir
        from gateway.config_monitor import MonitoringSettings
        role, directory, home = sys.argv[1:]
        use_multiprocess_dir(Path(directory), fresh=role == "primary")
        deployment = load_deployment(Path(home))
        store = open_store(deployment)
        metrics = Metrics(MonitoringSettings(), store, deployment)
        metrics.message_received("ACME", "as2")
        metrics.message_processed("ACME", "x12", "processed", ["order", "order"])
        if role == "scrape":
            sys.stdout.write(metrics.exposition().decode())
        store.close()
    """)
    env = {**os.environ, "GW_HARNESS_SECRET": "whsec_aGFybmVzcy1zZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZiE="}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    outputs = [subprocess.run([sys.executable, "-c", script, role, str(directory), str(home)], capture_output=True,
                              text=True, cwd=REPO, env=env, timeout=60) for role in ("primary", "secondary", "scrape")]
    assert all(run.returncode == 0 for run in outputs), [run.stderr for run in outputs]
    assert not (directory / "counter_999999.db").exists()
    found = samples(outputs[-1].stdout)
    assert value(found, "gateway_messages_received_total", partner="ACME", channel="as2") == 3
    assert value(found, "gateway_documents_total", partner="ACME", document_type="order") == 6
    assert value(found, "gateway_messages_processed_total", partner="ACME", format="x12", outcome="processed") == 3
    assert value(found, "gateway_store_up") == 1
