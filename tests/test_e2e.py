"""End to end: `gateway serve` as a subprocess, files dropped into an inbox, a real REST target."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from harness import REPO, GatewayProcess, drop, edifact_order, make_deployment, verify_signature, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway_factory(tmp_path):
    started: list[GatewayProcess] = []

    def make(target_url: str, env: dict[str, str] | None = None, **kwargs) -> GatewayProcess:
        home = make_deployment(tmp_path / "gw", target_url, **kwargs)
        gw = GatewayProcess(home, env)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


def inbox(gw: GatewayProcess) -> Path:
    return gw.home / "var" / "inbox" / "ACME"


def test_json_logs_name_the_partner_and_message_on_every_line_about_a_message(target, gateway_factory):
    gw = gateway_factory(target.url).start()
    target.mode = lambda document: 503 if not target.attempts else 200   # one retry, then delivered
    drop(inbox(gw), "po.edi", edifact_order("PO-LOGS"))
    drop(inbox(gw), "bad.edi", b"UNB+UNOC:3+nonsense")
    wait_for(lambda: target.received, 20, "the order delivered after a retry")
    gw.stop()
    lines = [json.loads(line) for line in gw.log().splitlines() if line.strip()]   # every line is JSON
    about_messages = [line for line in lines if line["event"] in (
        "received", "processed", "message rejected", "retry scheduled", "delivered")]
    assert {line["event"] for line in about_messages} == {
        "received", "processed", "message rejected", "retry scheduled", "delivered"}
    for line in about_messages:
        assert line.get("partner") == "ACME" and str(line.get("message_id", "")).startswith("msg_"), line
        assert {"timestamp", "level", "logger"} <= set(line), line


def test_edifact_and_x12_orders_arrive_as_canonical_json(target, gateway_factory):
    gw = gateway_factory(target.url).start()
    drop(inbox(gw), "orders.edi", (REPO / "examples" / "orders-d96a.edi").read_bytes())
    drop(inbox(gw), "po.x12", (REPO / "examples" / "850-004010.x12").read_bytes())
    wait_for(lambda: len(target.received) >= 2, 20, "two delivered orders")

    by_number = {r["document"]["document"]["number"]: r for r in target.received}
    edi = by_number["PO-EXAMPLE-1"]["document"]
    assert edi["type"] == "order" and edi["partner"] == "ACME" and edi["version"] == 1
    assert edi["source"]["format"] == "edifact" and edi["source"]["standard"] == "ORDERS D96A"
    assert edi["source"]["interchange"] == "EX0001" and edi["source"]["channel"] == "inbox"
    order = edi["document"]
    assert order["issue_date"] == "2026-11-26" and order["requested_delivery_date"] == "2026-12-03"
    assert order["currency"] == "EUR"
    assert order["buyer"] == {"id": "5412345000013", "scheme": "GLN", "name": "ACME Retail Europe"}
    assert order["seller"]["id"] == "8711111000007"
    assert order["ship_to"]["name"] == "ACME Store Antwerp"
    assert [(l["line"], l["item"]["gtin"], l["quantity"], l["unit"], l["unit_price"]) for l in order["lines"]] == [
        ("1", "8711111000118", "48", "PCE", "1.25"), ("2", "8711111000125", "24", "PCE", "1.40")]
    assert order["lines"][0]["item"]["description"] == "Apple juice 1L"

    x12 = by_number["PO-EXAMPLE-2"]["document"]
    assert x12["source"]["format"] == "x12" and x12["source"]["standard"] == "850 004010"
    po = x12["document"]
    assert po["issue_date"] == "2026-11-26" and po["currency"] == "USD"
    assert po["buyer"] == {"id": "0614141000012", "scheme": "GLN", "name": "ACME Retail US"}
    assert [(l["item"]["gtin"], l["quantity"], l["unit"], l["unit_price"]) for l in po["lines"]] == [
        ("012345678905", "10", "EA", "3.50"), ("8711111000132", "5", "CA", "42.00")]

    for record in target.received:
        assert verify_signature(record)
        assert record["headers"]["Idempotency-Key"] == record["document"]["idempotency_key"]

    # The story is in the log; the inbox is empty and the files are archived.
    messages = wait_for(lambda: [m for m in gw.cli_json("log", "list") if m["status"] == "processed"]
                        if len(gw.cli_json("log", "list")) == 2 else None, 10, "two processed messages")
    shown = gw.cli("log", "show", messages[0]["id"]).stdout
    for step in ("received", "mapped", "queued", "delivered"):
        assert re.search(rf"\b{step}\b", shown), shown
    assert list(inbox(gw).iterdir()) == []
    assert sorted(p.name for p in (gw.home / "var" / "archive" / "ACME").iterdir()) == ["orders.edi", "po.x12"]


def test_kill_9_with_200_files_in_flight_loses_and_doubles_nothing(target, gateway_factory):
    gw = gateway_factory(target.url).start()
    for n in range(200):
        drop(inbox(gw), f"order-{n:03d}.edi", edifact_order(f"PO-{n:03d}", icr=str(n + 1)))
    wait_for(lambda: len(target.received) >= 20, 30, "first deliveries")
    gw.kill()
    assert len(target.received) < 200, "the kill came too late to test anything"
    gw.start()
    wait_for(lambda: len({r["document"]["document"]["number"] for r in target.received}) == 200, 90,
             "all 200 orders after the restart")
    # Deliveries the killed process had leased are re-sent (same key) once their lease expires.
    wait_for(lambda: gw.cli_json("queue", "list") == [], 30, "the queue to drain after lease expiry")

    keys_by_po: dict[str, set[str]] = {}
    for r in target.received:
        keys_by_po.setdefault(r["document"]["document"]["number"], set()).add(r["headers"]["Idempotency-Key"])
    assert len(keys_by_po) == 200
    assert all(len(keys) == 1 for keys in keys_by_po.values()), "a document was delivered under two keys"
    assert list(inbox(gw).iterdir()) == []
    statuses = Counter(m["status"] for m in gw.cli_json("log", "list", "--limit", "1000"))
    assert statuses == {"processed": 200}


def test_target_down_then_up_retries_with_backoff_and_breaker(target, gateway_factory):
    target.mode = 503
    gw = gateway_factory(target.url, retry="initial_delay = 0.2\nmultiplier = 2.0\njitter = 0.0\n",
                         breaker="failure_threshold = 3\nreset_seconds = 1.0\n").start()
    for n in range(5):
        drop(inbox(gw), f"o{n}.edi", edifact_order(f"PO-DOWN-{n}", icr=str(n + 1)))
    wait_for(lambda: any(e["outcome"] == "open" for e in breaker_events(gw)), 20, "the breaker to open")
    wait_for(lambda: len(target.attempts) >= 8, 20, "several failed attempts")
    target.mode = "ok"
    wait_for(lambda: len(target.received) == 5, 30, "all five orders after recovery")
    assert any(e["outcome"] == "closed" for e in breaker_events(gw))

    # Each delivery's retries were scheduled at growing delays (0.2, 0.4, 0.8 s: no jitter here).
    delays: dict[str, list[float]] = {}
    for m in gw.cli_json("log", "list"):
        for e in gw.cli_json("log", "show", m["id"])["events"]:
            if e["step"] == "retry-scheduled":
                due = re.search(r"next attempt (\S+Z)", e["detail"]).group(1)
                at = dt.datetime.strptime(due, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
                delays.setdefault(e["delivery_id"], []).append(round(at.timestamp() - e["at"], 2))
    assert len(delays) == 5
    longest = max(delays.values(), key=len)
    assert len(longest) >= 2 and longest == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4][: len(longest)], delays
    assert all(d == longest[: len(d)] for d in delays.values()), delays
    assert gw.cli_json("dlq", "list") == []


def breaker_events(gw: GatewayProcess) -> list[dict]:
    events = []
    for m in gw.cli_json("log", "list"):
        events += [e for e in gw.cli_json("log", "show", m["id"])["events"] if e["step"] == "breaker"]
    return events


def test_client_error_dead_letters_and_dlq_retry_resends(target, gateway_factory):
    target.mode = 400
    gw = gateway_factory(target.url).start()
    drop(inbox(gw), "bad-for-erp.edi", edifact_order("PO-REFUSED"))
    dead = wait_for(lambda: gw.cli_json("dlq", "list"), 20, "a dead-lettered delivery")
    assert len(dead) == 1 and "HTTP 400" in dead[0]["last_error"] and dead[0]["attempts"] == 1
    assert target.received == []
    target.mode = "ok"
    out = gw.cli("dlq", "retry", dead[0]["id"]).stdout
    assert dead[0]["id"] in out
    wait_for(lambda: len(target.received) == 1, 20, "the re-sent delivery")
    assert target.received[0]["document"]["document"]["number"] == "PO-REFUSED"
    assert gw.cli_json("dlq", "list") == []


def test_bad_inputs_are_clear_errors_and_stay_replayable(target, gateway_factory, tmp_path):
    gw = gateway_factory(target.url)
    (gw.home / "partners" / "BROKEN.toml").write_text("name = [unclosed\n")
    gw.start()
    good = edifact_order("PO-GOOD")
    cases = {
        "empty.edi": b"",
        "binary.bin": bytes(range(256)) * 4,
        "truncated.edi": good[: len(good) // 2],
        "garbled.edi": good.replace(b"UNT+", b"UNT+X"),
        "stranger.edi": edifact_order("PO-STRANGER", sender="9999999999999"),
    }
    for name, data in cases.items():
        drop(inbox(gw), name, data)
    drop(inbox(gw), "good.edi", good)
    wait_for(lambda: len(target.received) == 1, 20, "the one good order")
    messages = wait_for(lambda: (lambda ms: ms if len(ms) == 6 and all(m["status"] != "received" for m in ms)
                                 else None)(gw.cli_json("log", "list")), 20, "six settled messages")
    by_file = {m["filename"]: m for m in messages}
    assert by_file["good.edi"]["status"] == "processed"
    expected = {"empty.edi": "empty", "binary.bin": "binary", "truncated.edi": "segment",
                "garbled.edi": "segment", "stranger.edi": "not an identifier of partner ACME"}
    for name, phrase in expected.items():
        assert by_file[name]["status"] == "failed", by_file[name]
        assert name in by_file[name]["error"] and phrase in by_file[name]["error"], by_file[name]["error"]
    assert gw.proc.poll() is None, "the gateway must survive bad input"
    assert list(inbox(gw).iterdir()) == []
    # Nothing is lost: each raw file is stored and can be replayed once the cause is fixed.
    stranger = by_file["stranger.edi"]["id"]
    detail = gw.cli_json("log", "show", stranger)
    assert detail["message"]["size"] == len(cases["stranger.edi"])
    acme = gw.home / "partners" / "ACME.toml"
    acme.write_text(acme.read_text().replace('edifact = ["14:5412345000013"]',
                                             'edifact = ["14:5412345000013", "14:9999999999999"]'))
    gw.cli("replay", stranger)
    wait_for(lambda: len(target.received) == 2, 20, "the replayed order")
    assert target.received[1]["document"]["document"]["number"] == "PO-STRANGER"
    # The broken partner file is reported, and did not stop the others.
    assert "BROKEN.toml" in gw.log()
    result = gw.cli("check", check=False)
    assert result.returncode == 2 and "partners/BROKEN.toml: -: not valid TOML" in result.stdout


def test_files_waiting_at_start_and_duplicates(target, gateway_factory):
    gw = gateway_factory(target.url)
    data = edifact_order("PO-EARLY")
    drop(inbox(gw), "early.edi", data)            # arrived while the gateway was down
    gw.start()
    wait_for(lambda: len(target.received) == 1, 20, "the early file")
    drop(inbox(gw), "again.edi", data)            # the partner sends the same bytes again
    messages = wait_for(lambda: (lambda ms: ms if len(ms) == 2 else None)(gw.cli_json("log", "list")), 20,
                        "the duplicate to be logged")
    dup = next(m for m in messages if m["filename"] == "again.edi")
    assert dup["status"] == "duplicate" and dup["duplicate_of"]
    assert len(target.received) == 1
    events = gw.cli_json("log", "show", dup["id"])["events"]
    assert any(e["outcome"] == "duplicate" for e in events)
    assert json.loads(target.received[0]["body"])["document"]["number"] == "PO-EARLY"


@pytest.mark.postgres
def test_postgresql_store_end_to_end_with_a_crash(target, gateway_factory, pg_url):
    """The same flow on PostgreSQL: orders arrive, a SIGKILL loses nothing, the log reads back."""
    from conftest import _empty_pg_tables

    _empty_pg_tables(pg_url)
    gw = gateway_factory(target.url, env={"GATEWAY_STORE_URL": pg_url}).start()
    for n in range(40):
        drop(inbox(gw), f"pg-{n:02d}.edi", edifact_order(f"PG-{n:02d}", icr=str(n + 1)))
    wait_for(lambda: len(target.received) >= 5, 30, "first deliveries on PostgreSQL")
    gw.kill()
    gw.start()
    wait_for(lambda: len({r["document"]["document"]["number"] for r in target.received}) == 40, 60,
             "all 40 orders on PostgreSQL")
    keys = {}
    for r in target.received:
        keys.setdefault(r["document"]["document"]["number"], set()).add(r["headers"]["Idempotency-Key"])
    assert all(len(k) == 1 for k in keys.values())
    assert Counter(m["status"] for m in gw.cli_json("log", "list", "--limit", "100")) == {"processed": 40}
    assert list(inbox(gw).iterdir()) == []


def test_a_message_left_unprocessed_by_another_process_is_taken_over(target, gateway_factory):
    # A message stored by a process that died before processing it (say a secondary that was
    # killed): the running primary's sweep processes it, without a restart.
    from gateway.model import Channel, Received
    from gateway.store import Store

    gw = gateway_factory(target.url, extra="recover_after_seconds = 1\n").start()
    store = Store.open(f"sqlite:///{gw.home / 'var' / 'gateway.db'}", gw.home / "var" / "blobs")
    try:
        orphan = store.receive(Received(raw=edifact_order("PO-ORPHAN"), channel=Channel.AS2, partner="ACME",
                                        filename="orphan.edi", source_ref="as2:<orphan@ACMEAS2>")).message
    finally:
        store.close()
    wait_for(lambda: target.received, 30, "the orphaned order at the target")
    assert target.received[0]["document"]["document"]["number"] == "PO-ORPHAN"
    assert gw.cli_json("log", "show", orphan.id)["message"]["status"] == "processed"
