"""Benchmark: first-page time of the transmission search and the overview on a SQLite store of 1M messages.

Builds the store with bulk INSERTs (SQLAlchemy Core executemany, 100k rows per transaction):
messages from 20 partners over 60 days on every channel, a document (PO/invoice number) per
processed message, a delivery per document (a few dead or pending, delivered ones with a
receipt -> delivery latency), AS2 MDNs for AS2 messages and AS2 deliveries, overdue acks.
Then times each search (limit 50) 20 times, next to two naive references: the same page 1000
by OFFSET instead of the keyset cursor, and the first page with messages NOT INDEXED.

    python scripts/bench_search.py                    # 1,000,000 messages (about two minutes to build)
    python scripts/bench_search.py --messages 20000   # a quick run
    python scripts/bench_search.py --plans            # also print SQLite's query plan of each search
    python scripts/bench_search.py --json FILE        # also save the figures to FILE
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.store import Store  # noqa: E402
from gateway.store.stats import DIRECTIONS, StatsMixin, _search_statement  # noqa: E402
from gateway.store.tables import ack_expectations, deliveries, documents, messages, receipts  # noqa: E402

StatsStore = Store if issubclass(Store, StatsMixin) else type("StatsStore", (Store, StatsMixin), {})

NOW = 1_800_000_000.0
SPAN = 60 * 86_400.0
CHUNK = 100_000
PARTNERS = [f"P{n:02d}" for n in range(20)]
PARTNER_WEIGHTS = [1 / (n + 1) for n in range(20)]   # a few big partners, a long tail
CHANNELS = ["as2", "sftp", "inbox", "poll", "api", "cli"]
CHANNEL_WEIGHTS = [40, 20, 15, 5, 15, 5]
TYPES = ["order", "invoice", "ship_notice", "order_response"]
TYPE_WEIGHTS = [50, 30, 15, 5]


def build(store: Store, count: int, *, analyze: bool = False, seed: int = 7) -> None:
    """Fill the store with ``count`` messages and what became of them."""
    rng = random.Random(seed)
    step = SPAN / count
    with store.engine.connect() as conn:
        for start in range(0, count, CHUNK):
            rows: dict[str, list[dict]] = {"messages": [], "documents": [], "deliveries": [], "receipts": [],
                                           "acks": []}
            for n in range(start, min(count, start + CHUNK)):
                _one(rng, n, NOW - SPAN + n * step + rng.random() * step, rows)
            with conn.begin():
                conn.execute(messages.insert(), rows["messages"])
                conn.execute(documents.insert(), rows["documents"])
                conn.execute(deliveries.insert(), rows["deliveries"])
                if rows["receipts"]:
                    conn.execute(receipts.insert(), rows["receipts"])
                if rows["acks"]:
                    conn.execute(ack_expectations.insert(), rows["acks"])
        if analyze:   # the gateway never runs ANALYZE: by default the planner works without statistics
            conn.exec_driver_sql("ANALYZE")


def pick_samples(store: Store) -> dict[str, Any]:
    """Values to search for, from the middle of the data: searches must find them, not just the newest rows."""
    middle = "SELECT {column} FROM {table} WHERE rowid >= (SELECT max(rowid) / 2 FROM {table}) {extra} LIMIT 1"
    with store.engine.connect() as conn:
        def one(column: str, table: str, extra: str = "") -> Any:
            return conn.exec_driver_sql(middle.format(column=column, table=table, extra=extra)).scalar_one()
        return {"number": one("number", "documents"), "number_partner": one("partner", "documents"),
                "interchange": one("interchange", "messages"),
                "as2_in": one("as2_message_id", "receipts", "AND direction = 'sent'"),
                "as2_out": one("as2_message_id", "receipts", "AND direction = 'received'")}


def _one(rng: random.Random, n: int, at: float, rows: dict[str, list[dict]]) -> None:
    partner = rng.choices(PARTNERS, PARTNER_WEIGHTS)[0]
    channel = rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
    recent = at > NOW - 600
    roll = rng.random()
    status = ("received" if recent and roll < 0.3 else "failed" if roll < 0.03 else "duplicate" if roll < 0.04
              else "processed")
    message_id = f"msg_{int(at * 1000):012x}{n:08x}"
    interchange = f"{n:09d}"
    rows["messages"].append({
        "id": message_id, "partner": partner, "channel": channel, "filename": f"f{n}.edi",
        "source_ref": f"{channel}:{n}", "raw_sha256": f"{n:064x}", "size": 1000 + n % 5000, "status": status,
        "duplicate_of": None, "format": "edifact", "standard": "ORDERS D96A", "interchange": interchange,
        "received_at": at, "updated_at": at, "error": "bad segment" if status == "failed" else None})
    if channel == "as2":
        as2_id = f"<{n}@{partner.lower()}.example>"
        rows["receipts"].append(_receipt("sent", partner, as2_id, message_id, None, at))
    if status != "processed":
        return
    doc_type = rng.choices(TYPES, TYPE_WEIGHTS)[0]
    number = f"{doc_type[:2].upper()}-{n}"
    document_id = f"doc_{n}"
    rows["documents"].append({
        "id": document_id, "message_id": message_id, "partner": partner, "type": doc_type, "number": number,
        "position": 0, "idempotency_key": f"key-{n}", "blob_sha256": f"{n:064x}", "created_at": at,
        "updated_at": at})
    roll = rng.random()
    state = "queued" if recent else "dead" if roll < 0.01 else "retrying" if roll < 0.015 else "delivered"
    latency = rng.lognormvariate(0.5, 0.8)
    delivery_id = f"dlv_{int(at * 1000):012x}{n:08x}"
    target = f"as2:{partner}" if channel in DIRECTIONS["outbound"] else "erp"
    rows["deliveries"].append({
        "id": delivery_id, "document_id": document_id, "partner": partner, "target": target, "status": state,
        "attempts": 1, "next_attempt_at": at, "lease_owner": None, "lease_expires_at": None,
        "last_error": "HTTP 400" if state == "dead" else None, "last_http_status": None, "created_at": at,
        "updated_at": at + latency, "delivered_at": at + latency if state == "delivered" else None,
        "sequence_key": None})
    if target.startswith("as2:") and state == "delivered":
        rows["receipts"].append(_receipt("received", partner, f"<out-{n}@gateway.example>", None, delivery_id, at))
        if at < NOW - 3 * 86_400 and rng.random() < 0.001:
            rows["acks"].append({
                "id": f"ack_{n}", "message_id": message_id, "partner": partner, "format": "edifact",
                "level": "interchange", "interchange": interchange, "group_ref": "", "message_ref": "",
                "status": "overdue", "due_at": at + 3600, "ack_message_id": None, "ack_level": None, "detail": "",
                "acked_at": None, "created_at": at, "updated_at": at})


def _receipt(direction: str, partner: str, as2_id: str, message_id: str | None, delivery_id: str | None,
             at: float) -> dict:
    return {"id": f"mdn_{direction[0]}{as2_id}", "direction": direction, "partner": partner, "as2_message_id": as2_id,
            "message_id": message_id, "delivery_id": delivery_id, "disposition": "processed", "mic": None,
            "mic_ok": None, "signed": True, "mode": "sync", "url": None, "status": "done", "attempts": 0,
            "next_attempt_at": None, "error": None, "blob_sha256": None, "transport_sha256": None, "created_at": at,
            "updated_at": at}


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """(median ms, max ms, last result) of ``runs`` calls."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), result


def naive(store: Store, given: dict[str, Any], *, offset: int, no_index: bool) -> Callable[[], list]:
    """The same search statement, paged by OFFSET and/or with messages NOT INDEXED (a table scan)."""
    sql, values = _sql(store, given, offset=offset, no_index=no_index)

    def run() -> list:
        with store.engine.connect() as conn:
            return conn.exec_driver_sql(sql, values).all()
    return run


def _sql(store: Store, given: dict[str, Any], *, offset: int = 0, no_index: bool = False) -> tuple[str, tuple]:
    """The search's SQL text (first page, limit 50, plus OFFSET) and its positional values."""
    given = dict(given)
    direction = given.pop("direction", None)
    params = {("p_as2" if k == "as2_message_id" else f"p_{k}"): v for k, v in given.items()}
    statement = _search_statement(frozenset(given), direction, False).offset(offset)
    with store.engine.connect() as conn:
        compiled = statement.compile(conn, compile_kwargs={"render_postcompile": True})
    values = {**compiled.params, **params, "p_limit": 50}
    sql = str(compiled)
    if no_index:   # SQLAlchemy renders no table hints for SQLite: the bench's own SQL text
        sql = sql.replace("\nFROM messages ", "\nFROM messages NOT INDEXED ", 1)
    return sql, tuple(values[key] for key in compiled.positiontup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--naive-runs", type=int, default=3, help="runs of each naive reference (they are slow)")
    parser.add_argument("--plans", action="store_true", help="print EXPLAIN QUERY PLAN of each search")
    parser.add_argument("--analyze", action="store_true", help="run ANALYZE after the build (planner statistics)")
    parser.add_argument("--dir", type=Path, help="keep the store here (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="with --dir: measure the store built there before")
    parser.add_argument("--json", type=Path, help="also save the figures to this file")
    args = parser.parse_args()
    figures: dict[str, Any] = {"messages": args.messages}
    with tempfile.TemporaryDirectory() as tmp:
        home = args.dir or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        database = home / "bench.sqlite"
        reuse = args.reuse and database.exists()
        if not reuse:
            for stale in home.glob("bench.sqlite*"):
                stale.unlink()
        store = StatsStore.open(f"sqlite:///{database}", home / "blobs")
        if reuse:
            print(f"reusing {database}", flush=True)
        else:
            started = time.perf_counter()
            build(store, args.messages, analyze=args.analyze)
            built = time.perf_counter() - started
            size_mb = database.stat().st_size / 1e6
            print(f"built {args.messages:,} messages (+documents, deliveries, MDNs) in {built:.1f} s, "
                  f"{size_mb:.0f} MB", flush=True)
            figures.update(build_seconds=round(built, 1), database_mb=round(size_mb, 1))
        try:
            figures["rows"] = report(store, pick_samples(store), args)
        finally:
            store.close()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def report(store: Store, samples: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time every search and the overview, print the table and return its rows."""
    rows: list[dict[str, Any]] = []
    cases: list[tuple[str, dict[str, Any]]] = [
        ("no filter", {}),
        ("partner", {"partner": "P03"}),
        ("partner+status", {"partner": "P03", "status": "failed"}),
        ("document_number", {"document_number": samples["number"]}),
        ("as2_message_id (in)", {"as2_message_id": samples["as2_in"]}),
        ("as2_message_id (out)", {"as2_message_id": samples["as2_out"]}),
        ("interchange", {"interchange": samples["interchange"]}),
        ("direction+since 1h", {"direction": "inbound", "since": NOW - 3600}),
        ("type+partner", {"document_type": "ship_notice", "partner": "P07"}),
        ("direction=outbound", {"direction": "outbound"}),
        ("channel+status", {"channel": "poll", "status": "duplicate"}),
        ("channel+rare status", {"channel": "as2", "status": "received"}),
        ("partner+number", {"partner": samples["number_partner"], "document_number": samples["number"]}),
        ("big partner+number", {"partner": "P00", "document_number": "PO-NONE"}),
        ("type matching none", {"document_type": "recipe"}),
        ("partner+type+since 7d", {"partner": "P01", "document_type": "invoice", "since": NOW - 7 * 86_400}),
    ]
    header = (f"{'search (limit 50)':<22} {'found':>5} {'median ms':>10} {'max ms':>8} {'p1000 keyset':>13} "
              f"{'p1000 OFFSET':>13} {'ratio':>7} {'NOT INDEXED':>12} {'ratio':>7}")
    print(header)
    print("-" * len(header))
    for name, given in cases:
        median, worst, page = timed(lambda: store.search_transmissions(**given, limit=50), args.runs)
        deep = offset = "-"
        keyset_ms = offset_ms = None
        ratio_offset = ratio_scan = "-"
        cursor = _page_1000_cursor(store, given)
        if cursor is not None:
            keyset_ms, _, keyset_page = timed(lambda: store.search_transmissions(**given, limit=50, before_id=cursor),
                                              args.runs)
            offset_ms, _, offset_page = timed(naive(store, dict(given), offset=999 * 50, no_index=False),
                                              args.naive_runs)
            assert [r.id for r in keyset_page] == [r[0] for r in offset_page], name
            deep, offset = f"{keyset_ms:.2f}", f"{offset_ms:.1f}"
            ratio_offset = f"{offset_ms / keyset_ms:.0f}x"
        scan_ms, _, scanned = timed(naive(store, dict(given), offset=0, no_index=True), args.naive_runs)
        assert [r.id for r in page] == [r[0] for r in scanned], name
        ratio_scan = f"{scan_ms / median:.0f}x"
        print(f"{name:<22} {len(page):>5} {median:>10.2f} {worst:>8.2f} {deep:>13} {offset:>13} {ratio_offset:>7} "
              f"{scan_ms:>12.1f} {ratio_scan:>7}", flush=True)
        rows.append({"search": name, "found": len(page), "median_ms": round(median, 3), "max_ms": round(worst, 3),
                     "page1000_keyset_ms": keyset_ms and round(keyset_ms, 3),
                     "page1000_offset_ms": offset_ms and round(offset_ms, 3), "not_indexed_ms": round(scan_ms, 3)})
        if args.plans:
            _plan(store, given)
    for hours in (24, 24 * 7):
        median, worst, overview = timed(
            lambda: store.overview(since=NOW - hours * 3600, until=NOW, bucket_seconds=3600), args.runs)
        messages_in = sum(p.messages for p in overview.partners)
        print(f"{f'overview {hours}h':<22} {messages_in:>5} {median:>10.2f} {worst:>8.2f}   "
              f"({len(overview.traffic)} traffic points, {len(overview.partners)} partners)")
        rows.append({"search": f"overview {hours}h", "found": messages_in, "median_ms": round(median, 3),
                     "max_ms": round(worst, 3)})
    return rows


def _page_1000_cursor(store: Store, given: dict[str, Any]) -> str | None:
    """The last id of page 999 (so the next page is page 1000), or None when there are fewer matches."""
    rows = naive(store, dict(given), offset=999 * 50 - 1, no_index=False)()
    return rows[0][0] if rows else None


def _plan(store: Store, given: dict[str, Any]) -> None:
    sql, values = _sql(store, given)
    with store.engine.connect() as conn:
        for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, values):
            print(f"      {row[-1]}")


if __name__ == "__main__":
    main()
