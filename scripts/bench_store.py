"""Benchmark: Store CPU/wall time per receive, record_processed, claim, complete (and message/raw reads)."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.model import Channel, Document, Received  # noqa: E402
from gateway.store import Store, document_json  # noqa: E402

OPS = ("receive", "message", "raw", "record_processed", "claim", "complete")
WRITES = ("receive", "record_processed", "claim", "complete")


def make_inputs(n: int, tag: str) -> list[tuple[Received, Document]]:
    out = []
    for i in range(n):
        raw = f"UNA:+.? 'UNB+UNOC:3+ACME:14+US:14+240101:1200+{tag}{i}'UNH+1+ORDERS:D:96A:UN'BGM+220+PO-{i}+9'".encode()
        received = Received(raw=raw, channel=Channel.INBOX, partner="ACME", filename=f"po-{i:05d}.edi",
                            source_ref=f"ACME/po-{i:05d}.edi:{len(raw)}:{tag}{i}")
        key = f"ACME:order:PO-{tag}{i}"
        envelope = {"id": f"doc-{tag}-{i}", "idempotency_key": key, "type": "order",
                    "document": {"number": f"PO-{i}", "total": "10.50", "lines": [{"sku": "A-1", "qty": 2}]}}
        doc = Document(type="order", partner="ACME", idempotency_key=key, envelope=envelope, number=f"PO-{i}",
                       targets=["erp"])
        out.append((received, doc))
    return out


class Timer:
    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    @contextmanager
    def __call__(self, op: str, calls: int = 1):
        w, c = time.perf_counter(), time.process_time()
        yield
        self.wall[op] += time.perf_counter() - w
        self.cpu[op] += time.process_time() - c
        self.count[op] += calls


def run_mode(store: Store, inputs: list[tuple[Received, Document]], group: int) -> Timer:
    """group == 1: one transaction per call; otherwise each op runs in store.batch() groups."""
    t = Timer()
    owner = "bench"
    for start in range(0, len(inputs), group):
        chunk = inputs[start:start + group]
        batched = group > 1

        def txn(durable: bool = False):
            return store.batch(durable=durable) if batched else nullcontext()

        ids = []
        with t("receive", len(chunk)), txn(durable=True):
            for received, _ in chunk:
                ids.append(store.receive(received).message.id)
        with t("message", len(chunk)):
            for mid in ids:
                store.message(mid)
        with t("raw", len(chunk)):
            for mid in ids:
                store.raw(mid)
        with t("record_processed", len(chunk)), txn():
            for mid, (_, doc) in zip(ids, chunk):
                store.record_processed(mid, format="edifact", standard="D96A", interchange="1", documents=[doc],
                                       partner="ACME")
        claimed = []
        with t("claim", len(chunk)), txn():
            for _ in chunk:
                claimed.extend(store.claim(owner, limit=1, lease_seconds=60))
        if len(claimed) != len(chunk):
            print(f"    note: claimed {len(claimed)} of {len(chunk)} deliveries", file=sys.stderr)
        with t("complete", len(chunk)), txn():
            for d in claimed:
                store.complete(d.delivery_id, owner, duration_ms=1.0, http_status=200)
    return t


def report(name: str, t: Timer) -> dict:
    """Print one mode's per-operation times and return them (ms per call, and per file)."""
    print(f"  {name}")
    print(f"    {'operation':<18}{'wall ms':>10}{'cpu ms':>10}")
    for op in OPS:
        n = t.count[op] or 1
        print(f"    {op:<18}{t.wall[op] * 1000 / n:>10.3f}{t.cpu[op] * 1000 / n:>10.3f}")
    files = t.count["receive"] or 1
    for label, ops in (("per file (writes)", WRITES), ("per file (all)", OPS)):
        print(f"    {label:<18}{sum(t.wall[o] for o in ops) * 1000 / files:>10.3f}"
              f"{sum(t.cpu[o] for o in ops) * 1000 / files:>10.3f}")
    return {"mode": name, "ops": {op: {"wall_ms": round(t.wall[op] * 1000 / (t.count[op] or 1), 4),
                                       "cpu_ms": round(t.cpu[op] * 1000 / (t.count[op] or 1), 4)} for op in OPS},
            "per_file_writes_wall_ms": round(sum(t.wall[o] for o in WRITES) * 1000 / files, 4),
            "per_file_all_wall_ms": round(sum(t.wall[o] for o in OPS) * 1000 / files, 4)}


def bench(url_for, n: int, group: int) -> list[dict]:
    modes = []
    for name, g in (("one call per transaction", 1), (f"store.batch() groups of {group}", group)):
        with tempfile.TemporaryDirectory() as tmp, url_for(tmp) as url:
            with Store.open(url, Path(tmp) / "blobs") as store:
                tag = secrets.token_hex(3)
                inputs = make_inputs(n, tag)
                for received, doc in inputs:   # the server puts blobs before the writer runs
                    store.blobs.put(received.raw)
                    store.blobs.put(document_json(doc.envelope))
                warm = make_inputs(20, tag + "w")
                for received, doc in warm:
                    store.blobs.put(received.raw)
                    store.blobs.put(document_json(doc.envelope))
                run_mode(store, warm, group)   # warm statement caches and pools
                modes.append(report(name, run_mode(store, inputs, group)))
    return modes


@contextmanager
def sqlite_url(tmp: str):
    yield f"sqlite:///{Path(tmp) / 'gateway.sqlite'}"


def pg_url_factory(server_url: str):
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    @contextmanager
    def pg_url(_tmp: str):
        libpq = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
        name = f"gw_bench_{secrets.token_hex(4)}"
        with psycopg.connect(libpq, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            try:
                yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
            finally:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    return pg_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--messages", type=int, default=2000)
    parser.add_argument("--group", type=int, default=20, help="writes per store.batch() in batch mode")
    parser.add_argument("--pg", metavar="URL",
                        help="also run on PostgreSQL: a scratch database is created on this server and dropped")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", type=Path, help="also save the figures to this file")
    args = parser.parse_args()
    figures: dict = {"messages": args.messages, "group": args.group}
    if not args.no_sqlite:
        print(f"SQLite, {args.messages} messages")
        figures["sqlite"] = bench(sqlite_url, args.messages, args.group)
    if args.pg:
        print(f"PostgreSQL, {args.messages} messages")
        figures["postgresql"] = bench(pg_url_factory(args.pg), args.messages, args.group)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
