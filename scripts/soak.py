"""Soak: a mixed load on one `gateway serve` for a bounded time, then every document sent reconciled against delivery.

The world (scripts/soak_peers.py): ``hq`` is the gateway under test; partner ACME sends orders
over AS2 with a sync MDN from its own gateway, uploads them to hq's SFTP server and drops them
into hq's inbox; partner BETA sends orders over AS2 with an async MDN from its gateway; internal
systems post invoices to hq's document API, which go to ACME over AS2. hq delivers the orders to
a REST target and a SOAP target (by ship-to branch). All on 127.0.0.1.

Rate: the seed's profile (15,000 sales a day for a 45-branch retailer) at 100x = 17.4 documents/s,
one document per message, spread evenly over the five paths. Measured: throughput, per-path
latency (receipt at hq -> delivery at the final target, and submission -> delivery), errors,
hq's RSS and open file descriptors sampled over time, database size at start and end. The
reconciliation matches every accepted document against what the targets received, by
idempotency key and document number: lost, doubled (two keys for one document), redelivered
(one key twice), misrouted.

Usage: .venv/bin/python scripts/soak.py [--minutes 10 | --ci] [--rate 17.4] [--store postgresql://...]
       [--json FILE]. Exit status 0 only when the reconciliation is clean and every submission was accepted.
With --store, the URL names a PostgreSQL server: a fresh database is created there for hq and
dropped after the run (--keep-db keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh

SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(SCRIPTS), str(SCRIPTS.parent / "tests")]

from harness import RecordingTarget, drop, wait_for  # noqa: E402
from soak_peers import (ACME_EDI, API_TOKEN, BRANCHES, HQ_EDI, SOAP_BRANCHES, SoapRecorder, World,  # noqa: E402
                        build_world, golden, rest_records)

PROFILE_PER_DAY = 15_000          # the seed's sales a day for the 45-branch retailer
SCALE = 100
DEFAULT_RATE = PROFILE_PER_DAY * SCALE / 86_400     # 17.36 documents/s
PATHS = ("as2-sync", "as2-async", "sftp", "inbox", "api")
TAGS = {"as2-sync": "AS", "as2-async": "AA", "sftp": "SF", "inbox": "IN", "api": "AP"}
SFTP_USES_PER_CONNECTION = 100    # partners reconnect now and then: server-side connection churn is part of the load
MAX_IN_FLIGHT = 16                # per path; a path further behind than this is late (reported), not faster


# --------------------------------------------------------------------------- documents

def orders_edifact(number: str, icr: int, branch: str, lines: int) -> bytes:
    """An EDIFACT ORDERS D96A interchange from ACME for one branch (NAD+DP), UNB numbered ``icr``."""
    segs = [f"UNB+UNOC:3+{ACME_EDI.split(':')[1]}:14+{HQ_EDI.split(':')[1]}:14+261126:0930+{icr}++ORDERS'",
            "UNH+1+ORDERS:D:96A:UN:EAN008'", f"BGM+220+{number}+9'", "DTM+137:20261126:102'",
            "NAD+BY+5412345000013::9++ACME Retail Europe'", "NAD+SU+4000001000005::9++Our Company'",
            f"NAD+DP+{branch}::9++ACME branch {BRANCHES.index(branch) + 1}'", "CUX+2:EUR:9'"]
    for n in range(1, lines + 1):
        segs += [f"LIN+{n}++87111110{n:05d}:EN'", f"QTY+21:{n * 6}:PCE'", f"PRI+AAA:{n}.25'"]
    segs += ["UNS+S'", f"UNT+{len(segs) + 1}+1'", f"UNZ+1+{icr}'"]   # UNT counts UNH..UNT; segs[0] is UNB
    return ("UNA:+.? '\n" + "\n".join(segs) + "\n").encode()


def canonical_order(number: str, branch: str, lines: int) -> dict[str, Any]:
    order = golden("out-edifact-orders")
    order["number"] = number
    order["ship_to"] = {"id": branch, "scheme": "GLN", "name": f"Branch {BRANCHES.index(branch) + 1}"}
    template = order["lines"][0]
    order["lines"] = [{**template, "line": str(n), "quantity": str(n * 6)} for n in range(1, lines + 1)]
    return order


def canonical_invoice(number: str) -> dict[str, Any]:
    invoice = golden("out-edifact-invoic")
    invoice["number"] = number
    return invoice


# --------------------------------------------------------------------------- the load

@dataclass
class Sent:
    number: str
    path: str
    expect: str                   # the target that must receive it: rest, soap or acme
    due: float                    # when the schedule wanted it handed over (time.time())
    submitted: float = 0.0        # when the hand-over started
    accepted: bool = False
    attempts: int = 0
    error: str = ""


@dataclass
class Load:
    run: str
    world: World
    rate: float
    seconds: float
    sent: dict[str, Sent] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)      # (path, kind) -> count, every failed attempt
    late: Counter = field(default_factory=Counter)        # path -> hand-overs started over 1 s after due
    rng: random.Random = field(default_factory=lambda: random.Random(8))

    async def run_all(self) -> None:
        per_path = self.rate / len(PATHS)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            self.http = http
            self.sftp = SftpUploader(self.world)
            try:
                await asyncio.gather(*(self.pace(path, per_path) for path in PATHS))
            finally:
                await self.sftp.close()

    async def pace(self, path: str, rate: float) -> None:
        """Hand over documents on ``path`` at ``rate``/s on a fixed schedule (not one after the other)."""
        begin = time.time()
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks = []
        count = int(self.seconds * rate)
        for n in range(count):
            due = begin + n / rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            branch = self.rng.choice(BRANCHES)
            number = f"SK{self.run}-{TAGS[path]}-{n:06d}"
            expect = "acme" if path == "api" else "soap" if branch in SOAP_BRANCHES else "rest"
            sent = self.sent[number] = Sent(number, path, expect, due)
            if time.time() - due > 1.0:
                self.late[path] += 1
            tasks.append(asyncio.create_task(self.hand_over(sent, n, branch, slots)))
        await asyncio.gather(*tasks)

    async def hand_over(self, sent: Sent, n: int, branch: str, slots: asyncio.Semaphore) -> None:
        lines = self.rng.randint(1, 10)
        try:
            sent.submitted = time.time()
            if sent.path == "inbox":
                sent.attempts = 1
                drop(self.world.hq.home / "var" / "inbox" / "ACME", f"{sent.number}.edi",
                     orders_edifact(sent.number, 700_000_000 + n, branch, lines))
                sent.accepted = True
            elif sent.path == "sftp":
                await self.with_retries(sent, lambda: self.sftp.upload(
                    f"{sent.number}.edi", orders_edifact(sent.number, 800_000_000 + n, branch, lines)))
            else:
                api, body = {
                    "as2-sync": (self.world.acme_api, {"partner": "HQ", "type": "order",
                                                       "document": canonical_order(sent.number, branch, lines)}),
                    "as2-async": (self.world.beta_api, {"partner": "HQ", "type": "order",
                                                        "document": canonical_order(sent.number, branch, lines)}),
                    "api": (self.world.hq_api, {"partner": "ACME", "type": "invoice",
                                                "document": canonical_invoice(sent.number)}),
                }[sent.path]
                await self.with_retries(sent, lambda: self.post(api, body, sent.number))
        except Exception as exc:   # the inbox path: a failed write is an error of the run, not a crash
            sent.error = f"{type(exc).__name__}: {exc}"
            self.errors[(sent.path, type(exc).__name__)] += 1
        finally:
            slots.release()

    async def with_retries(self, sent: Sent, attempt: Any, tries: int = 3) -> None:
        """Retry a failed hand-over like a real sender would (same file name / Idempotency-Key each time)."""
        for k in range(tries):
            sent.attempts += 1
            try:
                await attempt()
                sent.accepted = True
                return
            except Exception as exc:
                sent.error = f"{type(exc).__name__}: {exc}"[:300]
                self.errors[(sent.path, _kind(exc))] += 1
                await asyncio.sleep(1.0 * (k + 1))

    async def post(self, api: str, body: dict[str, Any], key: str) -> None:
        headers = {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": key}
        async with self.http.post(f"{api}/documents", json=body, headers=headers) as response:
            text = await response.text()
            if response.status not in (200, 201):
                raise HandOverRefused(f"HTTP {response.status}: {text[:200]}")


class HandOverRefused(Exception):
    """The receiving side answered a hand-over with an error status."""


def _kind(exc: Exception) -> str:
    if isinstance(exc, HandOverRefused):
        return str(exc).split(":")[0]
    return type(exc).__name__


class SftpUploader:
    """ACME's SFTP client: uploads into inbox/ on hq's server, a new connection every N uploads."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.connection: Any = None
        self.client: Any = None
        self.uses = 0
        self.lock = asyncio.Lock()
        self.inflight = [0]
        self.retiring: list[tuple[Any, list[int]]] = []
        self.connections = 0

    async def _client(self) -> tuple[Any, Any, list[int]]:
        async with self.lock:
            if self.connection is None or self.uses >= SFTP_USES_PER_CONNECTION:
                if self.connection is not None:
                    self.retiring.append((self.connection, self.inflight))
                self.connection = await asyncssh.connect(
                    "127.0.0.1", self.world.sftp_port, username="acme", client_keys=[str(self.world.sftp_key)],
                    known_hosts=str(self.world.sftp_known_hosts), config=None)
                self.client = await self.connection.start_sftp_client()
                self.inflight = [0]
                self.uses = 0
                self.connections += 1
            self.uses += 1
            self.inflight[0] += 1
            return self.connection, self.client, self.inflight

    async def upload(self, name: str, data: bytes) -> None:
        connection, client, inflight = await self._client()
        try:
            async with client.open(f"inbox/{name}", "wb") as fh:
                await fh.write(data)
        except Exception:
            if connection is self.connection:      # a broken connection: the next upload opens a new one
                self.retiring.append((connection, inflight))
                self.connection = None
            raise
        finally:
            inflight[0] -= 1
            await self._retire()

    async def _retire(self) -> None:
        for item in list(self.retiring):
            connection, inflight = item
            if inflight[0] == 0:
                self.retiring.remove(item)
                connection.close()
                await connection.wait_closed()

    async def close(self) -> None:
        for connection, _ in self.retiring:
            connection.close()
        if self.connection is not None:
            self.connection.close()
            await self.connection.wait_closed()


# --------------------------------------------------------------------------- sampling

def proc_sample(pid: int) -> dict[str, float] | None:
    """RSS (MB), open file descriptors and CPU seconds of a live process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration):
        return None
    return {"rss_mb": rss_kb / 1024, "fds": fds, "cpu_s": cpu}


class Sampler:
    """Samples the three gateway processes every ``every`` seconds on a thread."""

    def __init__(self, world: World, every: float) -> None:
        self.world, self.every = world, every
        self.samples: dict[str, list[dict[str, float]]] = {"hq": [], "acme": [], "beta": [], "soak": [], "machine": []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        now = time.time()
        for name, gw in (("hq", self.world.hq), ("acme", self.world.acme), ("beta", self.world.beta)):
            got = proc_sample(gw.proc.pid) if gw.proc else None
            if got:
                self.samples[name].append({"t": now, **got})
        own = proc_sample(os.getpid())          # the load generators and the three targets
        if own:
            self.samples["soak"].append({"t": now, **own})
        # The whole machine: other work on these 2 cores (other test runs) shows as cpu we did not use.
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]     # minus idle and iowait
        self.samples["machine"].append({"t": now, "cpu_s": busy / os.sysconf("SC_CLK_TCK")})

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (time s, value) in value per minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return None if var == 0 else sum((t - mt) * (v - mv) for t, v in points) / var * 60


def series_summary(samples: list[dict[str, float]], key: str, load_start: float, load_end: float) -> dict[str, Any]:
    during = [(s["t"], s[key]) for s in samples if load_start <= s["t"] <= load_end]
    warm = load_start + (load_end - load_start) * 0.25     # the first quarter is warm-up (caches, pools)
    steady = [(t, v) for t, v in during if t >= warm]
    values = [s[key] for s in samples]
    return {"start": values[0] if values else None, "peak": max(values) if values else None,
            "end": values[-1] if values else None,
            "slope_per_min": slope_per_minute(during), "steady_slope_per_min": slope_per_minute(steady),
            "series": [[round(s["t"] - load_start, 1), round(s[key], 2)] for s in samples]}


# --------------------------------------------------------------------------- stores

def db_size(store_url: str) -> int:
    """hq's database size in bytes: the SQLite file plus its WAL, or pg_database_size."""
    if store_url.startswith("sqlite:///"):
        path = Path(store_url[len("sqlite:///"):])
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    import psycopg

    with psycopg.connect(_libpq(store_url)) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def _libpq(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


def store_rows(store_url: str, run: str) -> dict[str, Any]:
    """The run's documents, their messages and deliveries in one gateway's store."""
    import sqlalchemy as sa

    from gateway.store.engine import normalize_url

    engine = sa.create_engine(normalize_url(store_url))
    pattern = f"%SK{run}-%"    # outbound interchanges are stored under their file name, <type>-<number>.edi
    try:
        with engine.connect() as conn:
            documents = [dict(r._mapping) for r in conn.execute(sa.text(
                "SELECT d.id, d.number, d.type, d.idempotency_key, m.channel, m.partner, m.status AS message_status, "
                "m.received_at FROM documents d JOIN messages m ON m.id = d.message_id WHERE d.number LIKE :p"),
                {"p": pattern})]
            deliveries = [dict(r._mapping) for r in conn.execute(sa.text(
                "SELECT l.target, l.status, l.attempts, l.created_at, l.delivered_at, l.last_error, d.number "
                "FROM deliveries l JOIN documents d ON d.id = l.document_id WHERE d.number LIKE :p"),
                {"p": pattern})]
            statuses = dict(conn.execute(sa.text("SELECT status, COUNT(*) FROM messages GROUP BY status")).all())
    finally:
        engine.dispose()
    return {"documents": documents, "deliveries": deliveries, "message_statuses": statuses}


def log_levels(gw: Any) -> dict[str, Any]:
    """Counts of warning/error lines in a gateway's JSON log, and the most frequent events among them."""
    levels: Counter = Counter()
    events: Counter = Counter()
    for n in range(1, gw.starts + 1):
        path = gw.home / f"serve-{n}.log"
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                levels["unparsed"] += 1
                continue
            level = entry.get("level", "")
            if level in ("warning", "error", "critical", "exception"):
                levels[level] += 1
                events[f"{level}: {entry.get('event', '')}"[:120]] += 1
    return {"levels": dict(levels), "top": events.most_common(8)}


# --------------------------------------------------------------------------- reconciliation

def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _plain_number(number: str) -> str:
    start = number.find("SK")
    return number[start:].removesuffix(".edi") if start >= 0 else number


def reconcile(load: Load, delivered: dict[str, list[dict[str, Any]]], hq_rows: dict[str, Any],
              acme_rows: dict[str, Any]) -> dict[str, Any]:
    """Every accepted document against every delivery: by number, then by idempotency key."""
    by_number: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for target, records in delivered.items():
        for record in records:
            envelope = record["envelope"]
            number = str((envelope.get("document") or {}).get("number", ""))
            by_number[number].append((target, record))
    stored: dict[str, list[dict[str, Any]]] = defaultdict(list)   # inbound documents at hq / invoices at acme
    for row in hq_rows["documents"]:
        if row["channel"] != "api":
            stored[row["number"]].append(row)
    for row in acme_rows["documents"]:
        if row["channel"] != "api":
            stored[row["number"]].append(row)
    # hq's receipt, every path (an API submission's document row is named by its file: invoice-<number>.edi)
    receipt = {_plain_number(row["number"]): row["received_at"] for row in hq_rows["documents"]}

    paths: dict[str, dict[str, Any]] = {p: {"sent": 0, "accepted": 0, "delivered": 0, "lost": [], "doubled": [],
                                            "redelivered": 0, "misrouted": [], "key_mismatch": [], "not_accepted": [],
                                            "receipt_ms": [], "submit_ms": []} for p in PATHS}
    for sent in load.sent.values():
        p = paths[sent.path]
        p["sent"] += 1
        if not sent.accepted:
            p["not_accepted"].append(sent.number)
            continue
        p["accepted"] += 1
        arrivals = by_number.get(sent.number, [])
        here = [r for t, r in arrivals if t == sent.expect]
        elsewhere = sorted({t for t, _ in arrivals if t != sent.expect})
        if elsewhere:
            p["misrouted"].append((sent.number, elsewhere))
        if not here:
            p["lost"].append(sent.number)
            continue
        p["delivered"] += 1
        keys = Counter(r["key"] for r in here)
        store_keys = {row["idempotency_key"] for row in stored.get(sent.number, [])}
        if len(keys) > 1 or len(store_keys) > 1:
            p["doubled"].append((sent.number, sorted(set(keys) | store_keys)))
        elif store_keys != set(keys) or any(r["envelope"].get("idempotency_key") != r["key"] for r in here):
            p["key_mismatch"].append((sent.number, sorted(keys), sorted(store_keys)))
        p["redelivered"] += sum(keys.values()) - len(keys)
        first = min(r["at"] for r in here)
        p["submit_ms"].append((first - sent.submitted) * 1000)
        if sent.number in receipt:
            p["receipt_ms"].append((first - receipt[sent.number]) * 1000)
    unexpected = sorted(n for n in by_number if n not in load.sent or not load.sent[n].accepted)
    for p in paths.values():
        for key in ("receipt_ms", "submit_ms"):
            values = p.pop(key)
            p[key.replace("_ms", "_latency_ms")] = {f"p{q}": percentile(values, q) for q in (50, 95, 99)} | \
                {"max": max(values) if values else None, "n": len(values)}
    failures = sum(len(p[k]) for p in paths.values() for k in ("lost", "doubled", "misrouted", "key_mismatch",
                                                                "not_accepted"))
    return {"paths": paths, "unexpected": unexpected, "failures": failures, "clean": failures == 0}


# --------------------------------------------------------------------------- the run

def create_pg_database(server_url: str) -> tuple[str, str]:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"gw_soak_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(server_url), autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False), name


def drop_pg_database(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(_libpq(server_url), autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def soak(args: argparse.Namespace) -> dict[str, Any]:
    run = secrets.token_hex(3).upper()
    seconds = args.minutes * 60
    rest, acme_target, soap = RecordingTarget(), RecordingTarget(), SoapRecorder()
    pg_name = None
    store_url = None
    if args.store:
        store_url, pg_name = create_pg_database(args.store)
    tmp = tempfile.mkdtemp(prefix="soak-")
    began = time.time()
    try:
        world = build_world(Path(tmp), rest_url=rest.url, soap_url=soap.url, acme_target_url=acme_target.url,
                            store_url=store_url)
        with ThreadPoolExecutor(3) as pool:
            if not args.ci:   # CI saves the three checks' start-up time; a broken deployment fails reconciliation anyway
                list(pool.map(lambda gw: gw.cli("check"), world.gateways()))
            list(pool.map(lambda gw: gw.start(), world.gateways()))
        try:
            setup_seconds = time.time() - began
            sampler = Sampler(world, args.sample_seconds)
            sampler.start()
            db_start = db_size(world.store_url)
            load = Load(run=run, world=world, rate=args.rate, seconds=seconds)
            load_start = time.time()
            asyncio.run(load.run_all())
            load_end = time.time()

            def delivered() -> dict[str, list[dict[str, Any]]]:
                return {"rest": rest_records(rest), "soap": soap.records(), "acme": rest_records(acme_target)}

            def all_in() -> bool:
                got = delivered()
                numbers = {t: {str(r["envelope"].get("document", {}).get("number")) for r in recs}
                           for t, recs in got.items()}
                return all(s.number in numbers[s.expect] for s in load.sent.values() if s.accepted)

            try:
                wait_for(all_in, args.drain_seconds, "every accepted document at its target", interval=0.5)
            except AssertionError:
                pass    # what is missing is reported as lost below
            drain_end = time.time()
            time.sleep(1.0)      # a redelivery right after the last delivery would still be counted
            db_end = db_size(world.store_url)
            sampler.stop()
        finally:
            with ThreadPoolExecutor(3) as pool:    # SIGTERM to all three at once: shutdowns overlap
                list(pool.map(lambda gw: gw.stop(), world.gateways()))
        logs = {"hq": log_levels(world.hq), "acme": log_levels(world.acme), "beta": log_levels(world.beta)}
        hq_rows = store_rows(world.store_url, run)
        acme_rows = store_rows(f"sqlite:///{world.acme.home / 'var' / 'gateway.db'}", run)
        beta_rows = store_rows(f"sqlite:///{world.beta.home / 'var' / 'gateway.db'}", run)
        records = delivered()
        recon = reconcile(load, records, hq_rows, acme_rows)
    finally:
        rest.close()
        acme_target.close()
        soap.close()
        if pg_name and not args.keep_db:
            drop_pg_database(args.store, pg_name)
        if not args.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)

    accepted = sum(1 for s in load.sent.values() if s.accepted)
    delivered_count = sum(p["delivered"] for p in recon["paths"].values())
    last_delivery = max((r["at"] for recs in records.values() for r in recs), default=load_end)
    hq = sampler.samples["hq"]
    report = {
        "run": run, "store": "postgresql" if args.store else "sqlite", "minutes": args.minutes,
        "target_rate_per_s": round(args.rate, 2), "load_seconds": round(load_end - load_start, 1),
        "drain_seconds": round(drain_end - load_end, 1), "setup_seconds": round(setup_seconds, 1),
        "wall_seconds": round(time.time() - began, 1), "kept": tmp if args.keep else None,
        "throughput": {
            "offered_per_s": round(len(load.sent) / (load_end - load_start), 2),
            "accepted_per_s": round(accepted / (load_end - load_start), 2),
            "delivered_per_s": round(delivered_count / max(1e-9, last_delivery - load_start), 2),
            "late_hand_overs": dict(load.late),
        },
        "paths": recon["paths"],
        "reconciliation": {"clean": recon["clean"], "failures": recon["failures"], "unexpected": recon["unexpected"]},
        "errors": {
            "hand_over": {f"{path} {kind}": n for (path, kind), n in load.errors.items()},
            "hq_message_statuses": hq_rows["message_statuses"],
            "hq_deliveries": _delivery_summary(hq_rows["deliveries"]),
            "acme_deliveries": _delivery_summary(acme_rows["deliveries"]),
            "beta_deliveries": _delivery_summary(beta_rows["deliveries"]),
            "soap_refused": len(soap.refused()),
            "logs": logs,
        },
        "memory_mb": series_summary(hq, "rss_mb", load_start, drain_end),
        "open_fds": series_summary(hq, "fds", load_start, drain_end),
        "cpu": {name: _cpu(samples, load_start, load_end) for name, samples in sampler.samples.items()},
        "partner_memory_mb": {name: series_summary(s, "rss_mb", load_start, drain_end) | {"series": None}
                              for name, s in sampler.samples.items() if name in ("acme", "beta")},
        "sftp_connections": load.sftp.connections,
        "db_bytes": {"start": db_start, "end": db_end,
                     "per_document": round((db_end - db_start) / max(1, accepted))},
    }
    mem = report["memory_mb"]
    steady = mem["steady_slope_per_min"]
    # Flat: the steady-state trend would add less than 1 MB a minute (under 10 MB over the default 10 minutes).
    report["memory_flat"] = None if steady is None or args.minutes < 5 else steady < 1.0
    ours = sum(report["cpu"][k] or 0 for k in ("hq", "acme", "beta", "soak"))
    report["cpu"]["others"] = None if report["cpu"]["machine"] is None else round(report["cpu"]["machine"] - ours, 1)
    return report


def _delivery_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = Counter((r["target"], r["status"]) for r in rows)
    return {"by_target_status": {f"{t} {s}": n for (t, s), n in sorted(statuses.items())},
            "retried": sum(1 for r in rows if (r["attempts"] or 0) > 1),
            "extra_attempts": sum(max(0, (r["attempts"] or 0) - 1) for r in rows),
            "errors": Counter((r["last_error"] or "")[:100] for r in rows if r["last_error"]).most_common(5)}


def _cpu(samples: list[dict[str, float]], start: float, end: float) -> float | None:
    during = [s for s in samples if start <= s["t"] <= end + 5]
    if len(during) < 2:
        return None
    return round((during[-1]["cpu_s"] - during[0]["cpu_s"]) / (during[-1]["t"] - during[0]["t"]) * 100, 1)


def fmt(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(r: dict[str, Any]) -> None:
    print(f"soak run {r['run']}: store {r['store']}, load {r['load_seconds']} s at {r['target_rate_per_s']}/s "
          f"target (100x of {PROFILE_PER_DAY:,}/day), drain {r['drain_seconds']} s, set-up {r['setup_seconds']} s, "
          f"wall {r['wall_seconds']} s")
    t = r["throughput"]
    print(f"throughput: offered {t['offered_per_s']}/s, accepted {t['accepted_per_s']}/s, "
          f"delivered {t['delivered_per_s']}/s; late hand-overs {t['late_hand_overs'] or 0}")
    print()
    head = (f"{'path':<10} {'sent':>6} {'accepted':>8} {'deliv.':>6} {'lost':>5} {'doubled':>7} {'redeliv.':>8} "
            f"{'misrt.':>6} | receipt->delivery ms P50/P95/P99 | submit->delivery ms P50/P95/P99")
    print(head)
    print("-" * len(head))
    for name, p in r["paths"].items():
        rl, sl = p["receipt_latency_ms"], p["submit_latency_ms"]
        print(f"{name:<10} {p['sent']:>6} {p['accepted']:>8} {p['delivered']:>6} {len(p['lost']):>5} "
              f"{len(p['doubled']):>7} {p['redelivered']:>8} {len(p['misrouted']):>6} | "
              f"{fmt(rl['p50']):>8} {fmt(rl['p95']):>7} {fmt(rl['p99']):>7}        | "
              f"{fmt(sl['p50']):>7} {fmt(sl['p95']):>7} {fmt(sl['p99']):>7}")
    m, f, d = r["memory_mb"], r["open_fds"], r["db_bytes"]
    print()
    print(f"hq RSS MB: start {fmt(m['start'], 1)}, peak {fmt(m['peak'], 1)}, end {fmt(m['end'], 1)}; slope "
          f"{fmt(m['slope_per_min'], 2)} MB/min (steady, after the first quarter: {fmt(m['steady_slope_per_min'], 2)});"
          f" flat: {r['memory_flat'] if r['memory_flat'] is not None else 'not judged (run < 5 min)'}")
    print(f"hq open fds: start {fmt(f['start'])}, peak {fmt(f['peak'])}, end {fmt(f['end'])}; slope "
          f"{fmt(f['slope_per_min'], 2)}/min (steady {fmt(f['steady_slope_per_min'], 2)}/min)")
    print(f"hq database: {d['start']:,} -> {d['end']:,} bytes ({d['per_document']:,} bytes per document)")
    print("cpu % of one core during the load (machine: 2 cores = 200; others: processes not of this run): " + ", ".join(f"{k} {fmt(v, 1)}" for k, v in r["cpu"].items()))
    e = r["errors"]
    print(f"errors: hand-over {e['hand_over'] or 0}; hq messages {e['hq_message_statuses']}; "
          f"soap refused {e['soap_refused']}")
    for name in ("hq", "acme", "beta"):
        dl = e[f"{name}_deliveries"]
        print(f"  {name} deliveries {dl['by_target_status']}, retried {dl['retried']} "
              f"(+{dl['extra_attempts']} attempts) {dl['errors'] or ''}")
        logs = e["logs"][name]
        print(f"  {name} log {logs['levels'] or 'no warnings or errors'} {logs['top'] or ''}")
    rec = r["reconciliation"]
    print()
    print(f"reconciliation: {'CLEAN' if rec['clean'] else 'FAILED'} - {rec['failures']} failures, "
          f"{len(rec['unexpected'])} deliveries of documents not accepted")
    for name, p in r["paths"].items():
        for key in ("lost", "doubled", "misrouted", "key_mismatch", "not_accepted"):
            if p[key]:
                print(f"  {name} {key}: {p[key][:10]}{' ...' if len(p[key]) > 10 else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load (default 10)")
    parser.add_argument("--ci", action="store_true", help="short mode for CI: 30 s of load, samples every 2 s")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="documents/s over all paths (default 17.4)")
    parser.add_argument("--store", help="a PostgreSQL server URL for hq (default SQLite); a fresh database is made")
    parser.add_argument("--keep-db", action="store_true", help="keep the PostgreSQL database after the run")
    parser.add_argument("--keep", action="store_true", help="keep the deployments (temp dir) after the run")
    parser.add_argument("--json", type=Path, help="write the whole report as JSON to this file")
    parser.add_argument("--sample-seconds", type=float, default=None, help="sampling interval (default 5, CI 2)")
    parser.add_argument("--drain-seconds", type=float, default=None,
                        help="how long to wait for the last deliveries after the load (default 60, CI 20)")
    args = parser.parse_args()
    if args.ci:
        args.minutes = 0.5
    args.sample_seconds = args.sample_seconds or (2.0 if args.ci else 5.0)
    args.drain_seconds = args.drain_seconds or (20.0 if args.ci else 60.0)
    report = soak(args)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0 if report["reconciliation"]["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
