"""Benchmark: deliveries per second with 1, 2 and 3 `gateway serve` nodes on one PostgreSQL store.

Each node is its own deployment (own inbox) sharing the store URL and the blob directory, all
delivering to one local aiohttp REST target (tests/harness.py RecordingTarget). N small EDIFACT
ORDERS files are dropped at once, spread round-robin over the nodes' inboxes; the figure is N
over the time from the first drop to the last delivery. One node on SQLite runs as a reference.
Each PostgreSQL run gets a fresh database (gw_bench_<random>), dropped afterwards.

Usage: .venv/bin/python scripts/bench_scale.py [--docs 2000] [--pg postgresql://postgres@127.0.0.1:5432/test]
                                               [--nodes 1,2,3] [--no-sqlite] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import GatewayProcess, RecordingTarget, drop, edifact_order, make_deployment, wait_for  # noqa: E402

DEFAULT_PG = os.environ.get("GATEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _libpq(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database on the server of ``admin_url``, dropped on exit; yields its URL."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"gw_bench_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run(nodes: int, docs: int, store_url: str | None) -> tuple[float, int]:
    """Seconds from the first drop to the last delivery of ``docs`` documents, and redeliveries."""
    target = RecordingTarget()
    with tempfile.TemporaryDirectory() as tmp:
        gateways: list[GatewayProcess] = []
        try:
            for n in range(nodes):
                home = make_deployment(Path(tmp) / f"node-{n}", target.url, extra=f'node = "node-{n}"\n')
                if store_url:   # SQLite: the deployment's default file; PostgreSQL: shared store and blobs
                    config = home / "gateway.toml"
                    config.write_text(config.read_text()
                                      + f'\n[store]\nurl = "{store_url}"\nblobs = "{Path(tmp) / "blobs"}"\n')
                gateways.append(GatewayProcess(home).start())   # one after another: the first migrates
            inboxes = [gw.home / "var" / "inbox" / "ACME" for gw in gateways]
            payloads = [edifact_order(f"S-{n:05d}", icr=str(n + 1)) for n in range(docs)]
            start = time.time()
            for n, data in enumerate(payloads):
                drop(inboxes[n % nodes], f"order-{n:05d}.edi", data)
            wait_for(lambda: len(set(target.keys())) >= docs, 900, "every document delivered", interval=0.05)
            keys = target.keys()
            last = max(r["at"] for r in target.received)
        finally:
            for gw in gateways:
                gw.stop()
            target.close()
    return last - start, len(keys) - len(set(keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents per run (default 2000)")
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin URL of the PostgreSQL server (a database on it)")
    parser.add_argument("--nodes", default="1,2,3", help="node counts to run on PostgreSQL (default 1,2,3)")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the 1-node SQLite reference run")
    parser.add_argument("--json", type=Path, help="also save the figures to this file")
    args = parser.parse_args()

    results: list[tuple[str, int, float, int]] = []   # (store, nodes, seconds, redeliveries)
    for count in (int(n) for n in args.nodes.split(",")):
        with fresh_database(args.pg) as url:
            seconds, again = run(count, args.docs, url)
        results.append(("postgresql", count, seconds, again))
        print(f"postgresql, {count} node(s): {args.docs / seconds:.1f} deliveries/s", flush=True)
    if not args.no_sqlite:
        seconds, again = run(1, args.docs, None)
        results.append(("sqlite", 1, seconds, again))
        print(f"sqlite, 1 node: {args.docs / seconds:.1f} deliveries/s", flush=True)

    base = next((args.docs / s for store, n, s, _ in results if store == "postgresql" and n == 1), None)
    print(f"\n{args.docs} documents, dropped at once, {os.cpu_count()} CPU cores shared by the nodes, "
          "the database and the target")
    print(f"{'store':<11} {'nodes':>5} {'seconds':>8} {'deliveries/s':>13} {'vs 1 node PG':>13} {'redelivered':>12}")
    for store, count, seconds, again in results:
        rate = args.docs / seconds
        ratio = f"{rate / base:.2f}x" if base else "-"
        print(f"{store:<11} {count:>5} {seconds:>8.1f} {rate:>13.1f} {ratio:>13} {again:>12}")
    if args.json:
        args.json.write_text(json.dumps({"docs": args.docs, "cores": os.cpu_count(), "runs": [
            {"store": store, "nodes": count, "seconds": round(seconds, 3),
             "deliveries_per_s": round(args.docs / seconds, 1), "redelivered": again}
            for store, count, seconds, again in results]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
