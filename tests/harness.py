"""Test and benchmark harness: real deployments in temp dirs, a real HTTP target, the gateway as a subprocess."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + base64.b64encode(b"harness-secret-0123456789abcdef!").decode()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def edifact_order(po: str, icr: str | None = None, lines: int = 2, sender: str = "5412345000013") -> bytes:
    """A valid EDIFACT ORDERS D96A interchange with ``lines`` order lines.

    ``icr`` (the interchange control reference) defaults to a number derived from ``po``, so
    different orders are never refused as duplicate interchanges.
    """
    icr = icr or str(zlib.crc32(po.encode()) % 10**9 + 1)
    segs = [f"UNB+UNOC:3+{sender}:14+8711111000007:14+261126:0930+{icr}++ORDERS'",
            "UNH+1+ORDERS:D:96A:UN:EAN008'", f"BGM+220+{po}+9'", "DTM+137:20261126:102'",
            "NAD+BY+5412345000013::9++ACME Retail Europe'",
            "NAD+SU+8711111000007::9++Our Company'", "CUX+2:EUR:9'"]
    for n in range(1, lines + 1):
        segs += [f"LIN+{n}++87111110{n:05d}:EN'", f"QTY+21:{n * 6}:PCE'", f"PRI+AAA:{n}.25'"]
    segs += ["UNS+S'", f"UNT+{len(segs) + 1}+1'", f"UNZ+1+{icr}'"]  # UNT counts UNH..UNT; segs[0] is UNB
    return ("UNA:+.? '\n" + "\n".join(segs) + "\n").encode()


class ThreadedServer:
    """A real aiohttp server on 127.0.0.1 (a free port), running in its own thread and event loop.

    Subclasses answer POSTs to ``path`` with ``_handle``; ``close()`` stops it.
    """

    path = "/"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class RecordingTarget(ThreadedServer):
    """A real aiohttp REST target on 127.0.0.1, in its own thread, that records every POST.

    ``mode`` scripts its answers: "ok" (200), an int status for every request, or a callable
    ``(body: dict) -> int`` deciding per request. Received documents are kept with their
    headers and arrival time, so tests can check keys, signatures and latency.
    """

    path = "/orders"

    def __init__(self) -> None:
        self.mode: Any = "ok"
        self.received: list[dict[str, Any]] = []
        self.attempts: list[tuple[float, int, str]] = []   # (time, status, idempotency key)
        super().__init__()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        document = json.loads(body)
        mode = self.mode
        status = 200 if mode == "ok" else mode(document) if callable(mode) else int(mode)
        with self._lock:
            self.attempts.append((time.time(), status, request.headers.get("Idempotency-Key", "")))
            if 200 <= status < 300:
                self.received.append({"at": time.time(), "headers": dict(request.headers), "body": body,
                                      "document": document})
        return web.Response(status=status, text="ok" if status < 300 else "refused")

    def keys(self) -> list[str]:
        with self._lock:
            return [r["headers"]["Idempotency-Key"] for r in self.received]


def verify_signature(record: dict[str, Any], secret: str = SECRET) -> bool:
    """Check a received request's Standard Webhooks signature the way a consumer would."""
    headers = record["headers"]
    key = base64.b64decode(secret[len("whsec_"):])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + record["body"]
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(headers["webhook-signature"], expected)


def make_deployment(home: Path, target_url: str, extra: str = "", retry: str = "", breaker: str = "") -> Path:
    """A deployment like the example, routing ACME's orders to a REST target at ``target_url``."""
    home.mkdir(parents=True, exist_ok=True)
    for part in ("partners", "mappings"):
        shutil.copytree(REPO / part, home / part, dirs_exist_ok=True)
    (home / "gateway.toml").write_text(
        f'[server]\nlog_format = "json"\nlog_level = "info"\n{extra}\n'
        f'[inbox]\nstable_seconds = 0.3\nrescan_seconds = 1.0\n'
        f'[delivery]\nlease_seconds = 5\npoll_seconds = 0.1\n'
        f'[retry]\n{retry}\n[breaker]\n{breaker}\n'
        f'[targets.erp]\ntype = "rest"\nurl = "{target_url}"\ntimeout = 3\nsecret = "env:GW_HARNESS_SECRET"\n')
    return home


class GatewayProcess:
    """``gateway serve`` as a real subprocess, logging to a file in the deployment."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        return {**os.environ, "GW_HARNESS_SECRET": SECRET, "PYTHONUNBUFFERED": "1", **self.extra_env}

    def start(self) -> "GatewayProcess":
        self.starts += 1
        log = open(self.home / f"serve-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([*os.environ.get("GW_WRAP", "").split(), sys.executable, "-m", "gateway.cli", "--home", str(self.home), "serve"],
                                     stdout=log, stderr=subprocess.STDOUT, env=self.env())
        wait_for(lambda: b"gateway started" in (self.home / f"serve-{self.starts}.log").read_bytes()
                 or self.proc.poll() is not None, 30, "the gateway to start")
        assert self.proc.poll() is None, self.log()
        return self

    def log(self) -> str:
        return (self.home / f"serve-{self.starts}.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, like a power cut of the process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run another ``gateway`` command against the same deployment."""
        result = subprocess.run([sys.executable, "-m", "gateway.cli", "--home", str(self.home), *args],
                                capture_output=True, text=True, env=self.env(), timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"gateway {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)


def drop(inbox: Path, name: str, data: bytes) -> Path:
    """Publish a file into an inbox the way well-behaved senders do: write a temp name, rename."""
    inbox.mkdir(parents=True, exist_ok=True)
    temp = inbox / f"{name}.part"
    temp.write_bytes(data)
    final = inbox / name
    os.replace(temp, final)
    return final
