"""Fault-matrix helpers: a target that misbehaves on cue, a look into the store, and the one reconciliation."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from aiohttp import web

from harness import GatewayProcess, RecordingTarget, ThreadedServer, drop, edifact_order, make_deployment, wait_for

# --------------------------------------------------------------------------- a target with faults


class FaultTarget(RecordingTarget):
    """A RecordingTarget whose answers can be slow, failing, cut off or late.

    ``fault(key, attempt)`` (attempt counts from 1 per idempotency key) returns "ok", an HTTP
    status, "close" (the connection is aborted after the body was read: no answer at all) or
    "late" (the target keeps the document but answers only after ``late_seconds``, i.e. after
    the gateway's timeout). ``delay`` slows every answer without failing it. ``in_flight`` counts
    requests being handled right now, so a test can kill the gateway while deliveries are open.
    """

    def __init__(self) -> None:
        self.fault: Callable[[str, int], Any] = lambda key, attempt: "ok"
        self.delay = 0.0
        self.late_seconds = 2.0
        self.in_flight = 0
        self.tries: Counter[str] = Counter()
        self.outcomes: list[tuple[str, int, str]] = []   # (key, attempt, what the target did)
        super().__init__()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        document = json.loads(body)
        key = request.headers.get("Idempotency-Key", "")
        with self._lock:
            self.tries[key] += 1
            attempt = self.tries[key]
            self.in_flight += 1
        try:
            what = self.fault(key, attempt)
            if self.delay:
                await asyncio.sleep(self.delay)
            if what == "close":
                self._note(key, attempt, "close", 0)
                assert request.transport is not None
                request.transport.abort()   # no status line at all: a connection reset for the client
                return web.Response(status=200)
            if what == "late":
                await asyncio.sleep(self.late_seconds)
                what = 200
            status = 200 if what == "ok" else int(what)
            self._note(key, attempt, str(what), status)
            if 200 <= status < 300:
                with self._lock:
                    self.received.append({"at": time.time(), "headers": dict(request.headers), "body": body,
                                          "document": document})
            return web.Response(status=status, text="ok" if status < 300 else "refused")
        finally:
            with self._lock:
                self.in_flight -= 1

    def _note(self, key: str, attempt: int, what: str, status: int) -> None:
        with self._lock:
            self.outcomes.append((key, attempt, what))
            self.attempts.append((time.time(), status, key))

    def numbers(self) -> set[str]:
        """Document numbers (PO numbers) the target has accepted."""
        with self._lock:
            return {r["document"]["document"]["number"] for r in self.received}


# --------------------------------------------------------------------------- deployments and partners


def fault_deployment(home: Path, target_url: str, *, timeout: float = 3, extra: str = "",
                     retry: str = "initial_delay = 0.2\nmultiplier = 1.5\nmax_delay = 1.0\njitter = 0.0\n",
                     breaker: str = "failure_threshold = 1000\n") -> Path:
    """The harness deployment with quick retries, a breaker that stays out of the way and a quick sweep."""
    make_deployment(home, target_url, extra=f"recover_after_seconds = 2\n{extra}", retry=retry, breaker=breaker)
    config = home / "gateway.toml"
    config.write_text(config.read_text().replace("timeout = 3\n", f"timeout = {timeout:g}\n"))
    return home


def inbox_of(gw: GatewayProcess, partner: str = "ACME") -> Path:
    return gw.home / "var" / "inbox" / partner


def archive_of(gw: GatewayProcess, partner: str = "ACME") -> Path:
    return gw.home / "var" / "archive" / partner


def send_orders(gw: GatewayProcess, prefix: str, count: int, *, lines: int = 2, first: int = 0) -> list[str]:
    """The partner drops ``count`` orders into its inbox (temp name, rename); returns their PO numbers."""
    pos = []
    for n in range(first, first + count):
        po = f"{prefix}-{n:04d}"
        drop(inbox_of(gw), f"{po}.edi", edifact_order(po, lines=lines))
        pos.append(po)
    return pos


def seeded(name: str) -> random.Random:
    """A random source per test, so a failing kill point can be reproduced (seed printed on failure)."""
    return random.Random(f"faults:{name}")


# --------------------------------------------------------------------------- the store, read directly


def store_url_of(gw: GatewayProcess) -> str:
    return gw.extra_env.get("GATEWAY_STORE_URL") or f"sqlite:///{gw.home / 'var' / 'gateway.db'}"


@dataclass
class StoreView:
    """Rows of messages, documents and deliveries as the store holds them now."""

    messages: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    events: list[dict[str, Any]]

    def events_named(self, step: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["step"] == step]


def read_store(gw: GatewayProcess) -> StoreView:
    """Read the store with plain SQL (no gateway code), the way an auditor would."""
    from gateway.store.tables import deliveries, documents, events, messages

    engine = sa.create_engine(store_url_of(gw).replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            def rows(table: sa.Table) -> list[dict[str, Any]]:
                return [dict(r._mapping) for r in conn.execute(sa.select(table))]
            return StoreView(rows(messages), rows(documents), rows(deliveries), rows(events))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the reconciliation


@dataclass
class Reconciliation:
    """What one reconciliation found (kept for the test's own assertions and the report)."""

    sent: int
    delivered: int
    redeliveries: int                       # target acceptances beyond the first per key
    attempts: int                           # every request the target saw
    message_statuses: Counter = field(default_factory=Counter)
    dead: set[str] = field(default_factory=set)
    dead_errors: dict[str, str] = field(default_factory=dict)
    archive_copies: int = 0                 # files archived a second time (kill between link and unlink)


def reconcile(gw: GatewayProcess, target: RecordingTarget, sent: list[str], *, dead: set[str] = frozenset(),
              timeout: float = 60, partner_inbox: bool = True) -> Reconciliation:
    """Every order the partner sent is delivered under exactly one key; nothing acknowledged lost; store agrees.

    - each PO in ``sent`` (except ``dead``) reached the target, every copy under one idempotency
      key, that key being the one the store holds for the document; nothing else reached it;
      POs in ``dead`` never reached it;
    - the store has no message left "received", no delivery queued or retrying, and dead
      deliveries for exactly the POs in ``dead``;
    - for inbox partners: the inbox is empty and every archived file (acknowledged: it left the
      inbox) is a stored message.
    Waits up to ``timeout`` for the gateway to settle, then asserts.
    """
    expected = set(sent) - set(dead)

    def settled() -> StoreView | None:
        if not expected <= _numbers(target) or getattr(target, "in_flight", 0):
            return None   # (a late answer still open may yet add a copy)
        view = read_store(gw)
        if any(m["status"] == "received" for m in view.messages):
            return None
        if any(d["status"] in ("queued", "retrying") for d in view.deliveries):
            return None
        if partner_inbox and any(not p.name.endswith(".part") for p in inbox_of(gw).iterdir()):
            return None
        return view

    try:
        view = wait_for(settled, timeout, "the gateway to settle", interval=0.3)
    except AssertionError:
        view = read_store(gw)
        missing = sorted(expected - _numbers(target))
        raise AssertionError(
            f"not settled after {timeout} s: {len(missing)} POs missing at the target ({missing[:5]}...); "
            f"messages {Counter(m['status'] for m in view.messages)}; "
            f"deliveries {Counter(d['status'] for d in view.deliveries)}; "
            f"inbox {sorted(p.name for p in inbox_of(gw).iterdir())[:5] if partner_inbox else '-'}") from None

    keys_by_po: dict[str, set[str]] = defaultdict(set)
    for record in list(target.received):
        keys_by_po[record["document"]["document"]["number"]].add(record["headers"]["Idempotency-Key"])
        assert record["headers"]["Idempotency-Key"] == record["document"]["idempotency_key"]
    assert set(keys_by_po) == expected, (sorted(set(keys_by_po) - expected), sorted(expected - set(keys_by_po)))
    doubled = {po: keys for po, keys in keys_by_po.items() if len(keys) != 1}
    assert not doubled, f"delivered under several idempotency keys: {doubled}"

    docs_by_po: dict[str, set[str]] = defaultdict(set)
    doc_po = {}
    for d in view.documents:
        docs_by_po[d["number"]].add(d["idempotency_key"])
        doc_po[d["id"]] = d["number"]
    for po in sent:
        assert len(docs_by_po.get(po, ())) == 1, f"{po}: store keys {docs_by_po.get(po)}"
        if po in keys_by_po:
            assert keys_by_po[po] == docs_by_po[po], f"{po}: delivered key is not the stored one"

    statuses = Counter(m["status"] for m in view.messages)
    assert statuses["received"] == 0
    leftover = [d for d in view.deliveries if d["status"] in ("queued", "retrying")]
    assert not leftover, leftover
    dead_rows = [d for d in view.deliveries if d["status"] == "dead"]
    dead_pos = {doc_po.get(d["document_id"], d["document_id"]) for d in dead_rows}
    assert dead_pos == set(dead), (dead_pos, dead)
    delivered_rows = Counter(doc_po[d["document_id"]] for d in view.deliveries if d["status"] == "delivered")
    assert all(delivered_rows[po] == 1 for po in expected), delivered_rows

    if partner_inbox:
        # Acknowledged = gone from the inbox. Every archived file's bytes must be a stored message
        # (a kill between the archive's link and unlink archives a file twice, the second copy
        # under a timestamped name: allowed, as long as its bytes are stored).
        stored_hashes = {m["raw_sha256"] for m in view.messages}
        archived = sorted(archive_of(gw).iterdir()) if archive_of(gw).exists() else []
        unstored = [p.name for p in archived if hashlib.sha256(p.read_bytes()).hexdigest() not in stored_hashes]
        assert not unstored, f"archived but never stored: {unstored}"
        assert {f"{po}.edi" for po in sent} <= {m["filename"] for m in view.messages}
        archive_copies = len(archived) - len({p.name for p in archived if p.name.count(".") == 1})
    else:
        archive_copies = 0

    received = list(target.received)
    return Reconciliation(
        sent=len(sent), delivered=len(keys_by_po), redeliveries=len(received) - len(keys_by_po),
        attempts=len(target.attempts), message_statuses=statuses, dead=dead_pos,
        dead_errors={doc_po.get(d["document_id"], d["document_id"]): d["last_error"] or "" for d in dead_rows},
        archive_copies=archive_copies)


def _numbers(target: RecordingTarget) -> set[str]:
    return {r["document"]["document"]["number"] for r in list(target.received)}


def log_events(gw: GatewayProcess, *starts: int) -> list[dict[str, Any]]:
    """The JSON log lines of the given runs (default: all runs so far)."""
    lines = []
    for n in starts or range(1, gw.starts + 1):
        path = gw.home / f"serve-{n}.log"
        for line in path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"event": line, "level": "raw"})
    return lines


def fault_gateway(tmp: Path, target: RecordingTarget, name: str = "gw", env: dict[str, str] | None = None,
                  **kwargs: Any) -> GatewayProcess:
    return GatewayProcess(fault_deployment(tmp / name, target.url, **kwargs), env)


# --------------------------------------------------------------------------- an AS2 partner that never answers


class SilentAs2Partner(ThreadedServer):
    """An AS2 partner endpoint that takes every message (HTTP 200) and never sends the async MDN it was asked for."""

    path = "/as2"

    def __init__(self) -> None:
        self.posts: list[dict[str, str]] = []
        super().__init__()

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        with self._lock:
            self.posts.append(dict(request.headers))
        return web.Response(status=200)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- an AS2 partner that resends


def post_until_mdn(url: str, body: bytes, message_id: str, *, as2_from: str, as2_to: str,
                   deadline_seconds: float = 90) -> tuple[int, bytes]:
    """POST one unsigned AS2 message asking for a sync MDN; resend it (same Message-ID) until an MDN comes.

    This is what a partner's AS2 server does when a connection drops: it cannot know whether
    the message was taken, so it sends the same message again. Returns (tries, MDN body).
    """
    headers = {"AS2-Version": "1.2", "AS2-From": as2_from, "AS2-To": as2_to, "Message-ID": message_id,
               "MIME-Version": "1.0", "Content-Type": "application/edifact", "Subject": "EDI",
               "Disposition-Notification-To": "edi@partner.example",
               "Disposition-Notification-Options": "signed-receipt-micalg=optional, sha-256"}
    deadline = time.monotonic() + deadline_seconds
    tries = 0
    while True:
        tries += 1
        try:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=10) as answer:
                mdn = answer.read()
                if answer.status == 200 and b"disposition" in mdn.lower():
                    return tries, mdn
        except urllib.error.HTTPError as exc:
            if exc.code < 500:   # refused for good (unknown partner, bad request): resending cannot help
                raise AssertionError(f"{message_id} refused: HTTP {exc.code} {exc.read()[:200]!r}") from None
        except (OSError, http.client.HTTPException):
            pass   # refused, reset, 5xx while the gateway is down or starting: send it again
        if time.monotonic() > deadline:
            raise AssertionError(f"no MDN for {message_id} after {tries} tries")
        time.sleep(0.3)
