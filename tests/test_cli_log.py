"""`gateway log list` with the dashboard's filters and paging, and `gateway stats`, on a scaffolded deployment."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.errors import MappingError
from gateway.model import Channel, Document, Received

NOW = time.time()


def run(home: Path, *args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(main, ["--home", str(home), *args])


def listed(home: Path, *args: str) -> list[str]:
    result = run(home, "log", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [row["id"] for row in json.loads(result.output)]


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "dep")])
    assert result.exit_code == 0, result.output
    return tmp_path / "dep"


@pytest.fixture
def made(home: Path) -> dict[str, str]:
    """Four messages in the deployment's store, two hours to ten minutes old."""
    from gateway.app import open_store
    from gateway.config import load_deployment

    store = open_store(load_deployment(home))
    try:
        order = store.receive(Received(b"UNB order", Channel.INBOX, "ACME", "po.edi"), now=NOW - 7200).message.id
        envelope = {"type": "order", "id": "doc-1", "idempotency_key": "k1", "partner": "ACME", "document": {}}
        store.record_processed(order, format="edifact", standard="ORDERS D96A", interchange="000000077",
                               documents=[Document("order", "ACME", "k1", envelope, number="PO-1", targets=["erp"])],
                               now=NOW - 7200)
        [claimed] = store.claim("w", limit=1, lease_seconds=60, now=NOW - 7195)
        store.complete(claimed.delivery_id, "w", duration_ms=1, now=NOW - 7195)
        invoice = store.receive(Received(b"UNB inv", Channel.AS2, "ACME", "inv.edi"), now=NOW - 3600).message.id
        store.add_receipt(direction="sent", partner="ACME", as2_message_id="<a1@acme>", message_id=invoice,
                          disposition="processed", signed=True, mode="sync", now=NOW - 3600)
        store.record_failed(invoice, MappingError("no BGM segment"), now=NOW - 3600)
        sent, _ = store.submit_outbound(b"out", partner="ACME", target="outbox:ACME", filename="o.txt",
                                        now=NOW - 1800)
        other = store.receive(Received(b"UNB b", Channel.SFTP, "BETA", "b.edi"), now=NOW - 600).message.id
    finally:
        store.close()
    return {"order": order, "invoice": invoice, "sent": sent.id, "other": other}


def test_log_list_filters_like_the_dashboard(home: Path, made: dict[str, str]) -> None:
    m = made
    assert listed(home) == [m["other"], m["sent"], m["invoice"], m["order"]]
    assert listed(home, "--partner", "ACME") == [m["sent"], m["invoice"], m["order"]]
    assert listed(home, "--direction", "outbound") == [m["sent"]]
    assert listed(home, "--direction", "inbound", "--partner", "ACME") == [m["invoice"], m["order"]]
    assert listed(home, "--channel", "sftp") == [m["other"]]
    assert listed(home, "--type", "order") == [m["order"]]
    assert listed(home, "--status", "failed") == [m["invoice"]]
    assert listed(home, "--number", "PO-1") == [m["order"]]
    assert listed(home, "--message-id", "<a1@acme>") == [m["invoice"]]
    assert listed(home, "--interchange", "000000077") == [m["order"]]
    assert listed(home, "--since", "45m") == [m["other"], m["sent"]]
    assert listed(home, "--since", iso(NOW - 4000), "--until", iso(NOW - 1000)) == [m["sent"], m["invoice"]]
    assert listed(home, "--number", "PO-1", "--status", "failed") == []


def test_log_list_pages_with_before(home: Path, made: dict[str, str]) -> None:
    first = run(home, "log", "list", "--limit", "2")
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0].split() == ["ID", "RECEIVED", "PARTNER", "CHANNEL", "FILENAME", "STATUS", "STANDARD", "ERROR"]
    assert [line.split()[0] for line in lines[1:3]] == [made["other"], made["sent"]]
    assert lines[3] == f"(more: add --before {made['sent']})"
    assert listed(home, "--limit", "2", "--before", made["sent"]) == [made["invoice"], made["order"]]
    assert listed(home, "--limit", "2", "--before", made["order"]) == []
    failed = run(home, "log", "list", "--status", "failed")
    row = failed.output.splitlines()[1]
    assert "inv.edi" in row and "failed" in row and "no BGM segment" in row and "(more" not in failed.output


@pytest.mark.parametrize(("args", "code", "text"), [
    (["--status", "lost"], 2, "'lost' is not one of"),
    (["--direction", "sideways"], 2, "'sideways' is not one of"),
    (["--channel", "fax"], 2, "'fax' is not one of"),
    (["--since", "yesterday"], 2, "neither an ISO time"),
    (["--limit", "0"], 2, "0 is not in the range"),
    (["--before", "msg_nope"], 1, "error: unknown message 'msg_nope' (paging cursor)"),
    (["--since", "1h", "--until", "2h"], 1, "error: since is after until"),
])
def test_log_list_refuses_bad_filters_without_a_traceback(home: Path, args: list[str], code: int, text: str) -> None:
    result = run(home, "log", "list", *args)
    assert result.exit_code == code and text in result.output, result.output
    assert "Traceback" not in result.output


def test_stats_json_matches_what_happened(home: Path, made: dict[str, str]) -> None:
    result = run(home, "stats", "--since", "3h", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.output)
    assert view["bucket_seconds"] == 300   # the first width giving at most 48 rows: 3 h / 5 min = 36
    assert sum(t["messages"] for t in view["traffic"]) == 4
    acme, beta = view["partners"]
    assert (acme["partner"], acme["messages"], acme["failed"], acme["documents"], acme["delivered"]) == (
        "ACME", 3, 1, 2, 1)
    assert acme["p95_latency"] == pytest.approx(5.0)
    assert acme["success_rate"] == pytest.approx(2 / 3)
    assert (beta["partner"], beta["messages"], beta["last_activity"]) == ("BETA", 1, pytest.approx(NOW - 600))
    assert [(q["partner"], q["target"], q["queued"]) for q in view["queues"]] == [("ACME", "outbox:ACME", 1)]
    assert {(o["document_type"], o["processed"], o["failed"]) for o in view["outcomes"]} == {
        ("", 0, 1), ("edi", 1, 0), ("order", 1, 0)}
    narrow = json.loads(run(home, "stats", "--since", "20m", "--json").output)
    assert [p["messages"] for p in narrow["partners"]] == [0, 1]


def test_stats_prints_tables(home: Path, made: dict[str, str]) -> None:
    result = run(home, "stats", "--since", "3h", "--bucket", "1h")
    assert result.exit_code == 0, result.output
    out = result.output
    for heading in ("partners", "document types", "queues", "traffic"):
        assert f"\n{heading}\n" in out
    partners = out.split("\npartners\n")[1].split("\n\n")[0].splitlines()
    assert partners[0].split() == ["PARTNER", "MESSAGES", "FAILED", "DOCUMENTS", "DEAD", "SUCCESS", "DELIVERED", "P95",
                                   "OVERDUE_ACKS", "LAST_ACTIVITY"]
    assert partners[1].split()[:9] == ["ACME", "3", "1", "2", "0", "66.7%", "1", "5.0s", "0"]
    assert "(rejected)" in out and "outbox:ACME" in out
    traffic = out.split("\ntraffic\n")[1].splitlines()
    assert traffic[0].split() == ["FROM", "MESSAGES", "FAILED", "CHANNELS"]
    assert len(traffic) == 1 + 4     # 3 h from an arbitrary moment spans four hourly buckets


@pytest.mark.parametrize(("args", "text"), [
    (["--bucket", "0m"], "'0m' is not a duration"),
    (["--bucket", "soon"], "'soon' is not a duration"),
    (["--since", "1h", "--until", "2h"], "--since must be before --until"),
    (["--since", "1d", "--bucket", "1s"], "at most 10000 buckets"),
])
def test_stats_refuses_bad_windows(home: Path, args: list[str], text: str) -> None:
    result = run(home, "stats", *args)
    assert result.exit_code in (1, 2) and text in result.output, result.output
    assert "Traceback" not in result.output
