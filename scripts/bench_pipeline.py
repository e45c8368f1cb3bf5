"""Benchmark: inbox -> delivered at a local aiohttp REST target, for small EDIFACT ORDERS files.

Runs `gateway serve` as a subprocess on a fresh SQLite deployment in a temp dir and measures

- burst: N files dropped at once -> files/s from the first drop to the last delivery;
- paced: N files dropped at a steady rate (default 100/s) -> P50/P95/P99 latency from the
  file's rename into the inbox to the target receiving its document.

Usage: .venv/bin/python scripts/bench_pipeline.py [--files 1000] [--rate 100] [--store URL] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import GatewayProcess, RecordingTarget, drop, edifact_order, make_deployment, wait_for  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(files: int, rate: float, store_url: str | None) -> dict:
    """Measure, print the figures and return them."""
    target = RecordingTarget()
    with tempfile.TemporaryDirectory() as tmp:
        extra = f'\n[store]\nurl = "{store_url}"\n' if store_url else ""
        home = make_deployment(Path(tmp) / "gw", target.url)
        if extra:
            home.joinpath("gateway.toml").write_text(home.joinpath("gateway.toml").read_text() + extra)
        gw = GatewayProcess(home)
        gw.start()
        inbox = home / "var" / "inbox" / "ACME"
        try:
            payloads = [edifact_order(f"B-{n:05d}", icr=str(n + 1)) for n in range(files)]
            # Burst: throughput.
            start = time.time()
            for n, data in enumerate(payloads):
                drop(inbox, f"burst-{n:05d}.edi", data)
            wait_for(lambda: len(target.received) >= files, 600, "burst deliveries", interval=0.02)
            burst_seconds = max(r["at"] for r in target.received) - start
            # Paced: latency at a steady rate.
            target.received.clear()
            sent: dict[str, float] = {}
            interval = 1.0 / rate
            begin = time.monotonic()
            for n in range(files):
                due = begin + n * interval
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                po = f"P-{n:05d}"
                data = edifact_order(po, icr=str(100000 + n))
                sent[po] = time.time()
                drop(inbox, f"paced-{n:05d}.edi", data)
            paced_seconds = time.monotonic() - begin   # did the drops keep the rate?
            wait_for(lambda: len(target.received) >= files, 600, "paced deliveries", interval=0.02)
            latencies = [(r["at"] - sent[r["document"]["document"]["number"]]) * 1000 for r in target.received]
        finally:
            gw.stop()
            target.close()
    print(f"store: {store_url or 'sqlite (embedded default)'}; files: {files}")
    print(f"burst: {files} files in {burst_seconds:.2f} s = {files / burst_seconds:.1f} files/s inbox -> delivered")
    print(f"paced at {rate:g} files/s: latency drop -> delivered "
          f"P50 {percentile(latencies, 50):.0f} ms, P95 {percentile(latencies, 95):.0f} ms, "
          f"P99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms, mean {statistics.mean(latencies):.0f} ms")
    achieved = (files - 1) / paced_seconds if files > 1 else rate   # n drops span n - 1 intervals
    print(f"paced drops kept {achieved:.1f} files/s")
    return {"store": store_url or "sqlite", "files": files, "burst_seconds": round(burst_seconds, 3),
            "burst_files_per_s": round(files / burst_seconds, 1), "rate": rate,
            "paced_achieved_per_s": round(achieved, 1),
            "latency_ms": {name: round(value, 1) for name, value in (
                ("p50", percentile(latencies, 50)), ("p95", percentile(latencies, 95)),
                ("p99", percentile(latencies, 99)), ("max", max(latencies)), ("mean", statistics.mean(latencies)))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--store", help="store URL (default: SQLite in the temp deployment)")
    parser.add_argument("--json", type=Path, help="also save the figures to this file")
    args = parser.parse_args()
    figures = run(args.files, args.rate, args.store)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
