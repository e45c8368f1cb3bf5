"""Sending the asynchronous MDNs we owe partners: POST each pending receipt to its URL, retrying with growing delays.

The state lives in the store (receipts with status ``pending`` and ``next_attempt_at``), so
a restart resumes where the last run stopped. The URL is the partner's Receipt-Delivery-Option:
a partner-chosen address our server connects to (server-side request forgery), so only
http(s) URLs without credentials are accepted, hosts must resolve to public addresses (a
partner's ``async_mdn_hosts`` may name private ones, e.g. in a VPN), checked on the address
actually connected to; redirects are not followed, TLS is always verified and the body is our
own MDN. Several nodes on one database would each send a due
MDN (there is no claim on receipts); partners tolerate a repeated MDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import re
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import structlog

from ..as2 import mime
from ..config import Deployment, Partner
from ..errors import StoreError
from ..store import Store
from ..store.transfers import ReceiptRecord

log = structlog.get_logger("gateway.as2")

# After attempt n fails, the next one waits DEFAULT_RETRY_DELAYS[n-1]; after the last, the MDN is failed.
DEFAULT_RETRY_DELAYS = (10.0, 30.0, 120.0, 600.0, 1800.0)
_NEEDS_QUOTES = re.compile(r"[\s()<>@,;:/\[\]?={}]")

Write = Callable[..., Awaitable[Any]]


def as2_id_header(as2_id: str) -> str:
    """An AS2 id as an AS2-From/AS2-To value: quoted when it holds spaces or separators (RFC 4130 §6.2)."""
    return f'"{as2_id}"' if _NEEDS_QUOTES.search(as2_id) else as2_id


def new_message_id(as2_id: str) -> str:
    """A fresh, globally unique ``<...@our-id>`` Message-ID."""
    domain = re.sub(r"[^A-Za-z0-9.-]", "_", as2_id) or "gateway"
    return f"<{uuid.uuid4().hex}@{domain}>"


def reply_headers(our_as2_id: str, partner_as2_id: str) -> dict[str, str]:
    """The AS2 headers of an MDN we send (sync in the HTTP answer, or async as a POST)."""
    return {"AS2-Version": "1.2", "AS2-From": as2_id_header(our_as2_id), "AS2-To": as2_id_header(partner_as2_id),
            "Message-ID": new_message_id(our_as2_id), "MIME-Version": "1.0"}


def split_mdn_entity(entity: bytes) -> tuple[str, bytes]:
    """A stored MDN entity (``Content-Type: ...`` header block + body) as ``(content_type, body)``."""
    headers, body = mime.split_entity(mime.Span.of(entity))
    return headers.get("content-type", "text/plain"), body.tobytes()


def _public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


class PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    """Resolves like aiohttp's default, but refuses hosts whose addresses are not public (SSRF guard).

    The check is on the addresses the connection will use, so DNS rebinding cannot slip past it.
    ``allowed`` hosts (a partner's ``async_mdn_hosts``) may resolve to anything.
    """

    def __init__(self, allowed: Sequence[str]) -> None:
        self.allowed = {h.lower() for h in allowed}
        self._inner = aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        found = await self._inner.resolve(host, port, family)
        if host.lower() in self.allowed:
            return found
        if not found or not all(_public(entry["host"]) for entry in found):
            raise OSError(errno.EPERM, f"{host} resolves to a private, loopback or reserved address; list it "
                          f"in the partner's [as2] async_mdn_hosts if that is intended")
        return found

    async def close(self) -> None:
        await self._inner.close()


def mdn_url_problem(url: str, allowed_hosts: Sequence[str] = ()) -> str | None:
    """Why a Receipt-Delivery-Option URL cannot be used, or None when it can."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "Receipt-Delivery-Option is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Receipt-Delivery-Option must be an http:// or https:// URL"
    if parts.username or parts.password:
        return "Receipt-Delivery-Option must not carry credentials"
    host = parts.hostname.lower()
    literal = host.strip("[]")
    if host not in allowed_hosts and _is_ip(literal) and not _public(literal):
        return (f"Receipt-Delivery-Option host {host} is not a public address (the partner's [as2] "
                f"async_mdn_hosts can allow it)")
    return None


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class AsyncMdnSender:
    """The loop that POSTs due async MDNs (``store.due_async_mdns()``) and settles each attempt."""

    def __init__(self, deployment: Deployment, store: Store, write: Write, *,
                 retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS, poll_seconds: float = 5.0,
                 batch: int = 50, may_run: Callable[[], bool] = lambda: True) -> None:
        self.deployment = deployment
        self.may_run = may_run      # False while another node runs the deployment's schedules
        self.store = store
        self.write = write
        self.retry_delays = tuple(retry_delays)
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sessions: dict[str, aiohttp.ClientSession] = {}   # per partner: its own SSRF allowlist
        self._contexts: dict[str, ssl.SSLContext | bool] = {}

    def wake(self) -> None:
        """A new async MDN was stored: look for due ones now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="as2-async-mdn")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            due: list[ReceiptRecord] = []
            try:
                if self.may_run():
                    due = await asyncio.to_thread(self.store.due_async_mdns, limit=self.batch)
                outcomes = await asyncio.gather(*(self._send(receipt) for receipt in due), return_exceptions=True)
                failed = [o for o in outcomes if isinstance(o, BaseException)]
                if failed:
                    raise failed[0]
            except Exception:  # the store is down: keep the loop, try again at the next poll
                log.exception("async MDN pass failed")
                due = []   # and wait for the next poll rather than spin on the same batch
            if len(due) < self.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    def _session(self, partner: Partner) -> aiohttp.ClientSession:
        session = self._sessions.get(partner.id)
        if session is None:
            assert partner.as2 is not None
            resolver = PublicOnlyResolver(partner.as2.async_mdn_hosts)
            session = self._sessions[partner.id] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver))
        return session

    def _ssl(self, partner: Partner) -> ssl.SSLContext | bool:
        """Verified TLS always; a partner's ca_file adds its private CA."""
        ca_file = partner.as2.ca_file if partner.as2 else None
        if ca_file is None:
            return True
        if partner.id not in self._contexts:
            self._contexts[partner.id] = ssl.create_default_context(cafile=str(ca_file))
        return self._contexts[partner.id]

    async def _send(self, receipt: ReceiptRecord) -> None:
        """One attempt to POST one MDN; its outcome is recorded whatever happens."""
        partner = self.deployment.partners.get(receipt.partner)
        error = await self._post(receipt, partner) if partner is not None and partner.as2 is not None \
            else f"partner {receipt.partner} has no AS2 settings any more"
        if error is None:
            await self.write(self.store.settle_async_mdn, receipt.id, sent=True)
            log.info("async MDN sent", partner=receipt.partner, as2_message_id=receipt.as2_message_id,
                     url=receipt.url)
            return
        attempt = receipt.attempts + 1
        next_at = time.time() + self.retry_delays[attempt - 1] if attempt <= len(self.retry_delays) else None
        await self.write(self.store.settle_async_mdn, receipt.id, sent=False, error=error, next_attempt_at=next_at)
        log.warning("async MDN not delivered", partner=receipt.partner, as2_message_id=receipt.as2_message_id,
                    attempt=attempt, error=error, retry_at=next_at)

    async def _post(self, receipt: ReceiptRecord, partner: Partner) -> str | None:
        """POST the stored MDN; returns None when the partner took it, else what went wrong."""
        assert partner.as2 is not None
        url = receipt.url or ""
        problem = mdn_url_problem(url, partner.as2.async_mdn_hosts)
        if problem or receipt.blob_sha256 is None:
            return problem or "no MDN stored"
        try:
            entity = await asyncio.to_thread(self.store.blobs.get, receipt.blob_sha256)
            content_type, body = split_mdn_entity(entity)
            headers = {**reply_headers(self.deployment.settings.as2.as2_id, partner.as2.as2_id),
                       "Content-Type": content_type}
            timeout = aiohttp.ClientTimeout(total=partner.as2.timeout)
            async with self._session(partner).post(url, data=body, headers=headers, ssl=self._ssl(partner), timeout=timeout,
                                          allow_redirects=False) as resp:
                snippet = (await resp.content.read(200)).decode("utf-8", "replace").strip()
                if 200 <= resp.status < 300:
                    return None
                return f"{url} answered HTTP {resp.status}" + (f": {snippet}" if snippet else "")
        except TimeoutError:
            return f"no answer from {url} within {partner.as2.timeout:g} s"
        except aiohttp.ClientError as exc:
            return f"cannot reach {url}: {type(exc).__name__}: {exc}"
        except (StoreError, mime.NotMime) as exc:
            return f"cannot read the stored MDN: {exc}"
        except (ssl.SSLError, OSError, ValueError) as exc:   # e.g. the partner's ca_file is not a certificate
            return f"cannot send to {url}: {type(exc).__name__}: {exc}"
