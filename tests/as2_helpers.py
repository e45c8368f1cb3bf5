"""Shared pieces for the AS2 receiving tests: a deployment on disk, the running endpoint, partner-side requests."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from fixtures.as2.pki import PKI

from gateway.as2 import Mdn, parse_mdn
from gateway.config import Deployment, Partner, load_deployment
from gateway.http import HttpServer
from gateway.inbound.as2 import As2Receiver
from gateway.store import Store
from gateway.store.tables import events
from gateway.writer import BatchWriter

OUR_ID = "GATEWAY"
PASSWORD = "s3cret-Pa55word"
# partner id -> (AS2 id, extra lines of its [as2] table)
PARTNERS = {
    "ACME": ("ACME-AS2", 'async_mdn_hosts = ["127.0.0.1"]\n'),   # the tests' MDN receivers are local
    "LAX": ("LAX-AS2", "require_signature = false\nrequire_encryption = false\n"),
    "AUTH": ("AUTH-AS2", f'basic_auth_user = "acme"\nbasic_auth_password = "{PASSWORD}"\n'
                         'allowed_ips = ["127.0.0.1/32"]\n'),
    "FENCED": ("FENCED-AS2", 'allowed_ips = ["10.0.0.0/8"]\n'),
}


def write_deployment(home: Path, keys: PKI, *, request_timeout: float = 30) -> Deployment:
    """A deployment in ``home``: our key pair, the partners above (all sharing keys.partner's certificate)."""
    certs = home / "certs"
    certs.mkdir(parents=True)
    key, cert = keys.pem["ours"]
    (certs / "ours.pem").write_bytes(key + cert)
    (certs / "partner.crt").write_bytes(keys.pem["partner"][1])
    (home / "gateway.toml").write_text(
        f'[http]\nhost = "127.0.0.1"\nport = 0\nmax_body_mb = 0.25\nrequest_timeout = {request_timeout}\n'
        f'[as2]\nas2_id = "{OUR_ID}"\nidentities = ["certs/ours.pem"]\nmax_decompressed_mb = 1\n')
    (home / "partners").mkdir()
    for partner_id, (as2_id, extra) in PARTNERS.items():
        (home / "partners" / f"{partner_id}.toml").write_text(
            f'id = "{partner_id}"\n[inbox]\nenabled = false\n'
            f'[as2]\nid = "{as2_id}"\ncertificates = ["certs/partner.crt"]\n{extra}')
    deployment = load_deployment(home)
    assert not deployment.problems, deployment.problems
    return deployment


@dataclass
class Reply:
    """An HTTP answer from the AS2 endpoint."""

    status: int
    headers: Any
    body: bytes
    message_id: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def mdn(self, keys: PKI, *, signed: bool = True) -> Mdn:
        return parse_mdn(self.headers["Content-Type"], self.body, trusted=[keys.ours.certificate],
                         require_signature=signed)


@dataclass
class Endpoint:
    """The AS2 endpoint under test, served on 127.0.0.1 by a real HttpServer."""

    deployment: Deployment
    store: Store
    write: BatchWriter
    receiver: As2Receiver
    server: HttpServer
    received: list[str] = field(default_factory=list)        # on_message calls
    mdns: list[tuple[Partner, str, bytes]] = field(default_factory=list)  # on_mdn calls

    @property
    def url(self) -> str:
        return self.server.url + "/as2"

    @property
    def tmp_dir(self) -> Path:
        return self.deployment.home / "var" / "tmp"

    async def post(self, body: bytes, content_type: str, *, message_id: str | None = None,
                   as2_from: str = "ACME-AS2", as2_to: str = OUR_ID, mdn: str = "sync", signed_mdn: bool = True,
                   micalg: str = "sha-256", url: str | None = None, headers: dict[str, str] | None = None,
                   drop: tuple[str, ...] = ()) -> Reply:
        """POST an AS2 message the way a partner's AS2 server would."""
        message_id = message_id or f"<{uuid.uuid4().hex}@{as2_from}>"
        sent = {"AS2-Version": "1.2", "AS2-From": as2_from, "AS2-To": as2_to, "Message-ID": message_id,
                "MIME-Version": "1.0", "Content-Type": content_type, "Subject": "EDI"}
        if mdn != "none":
            protocol = "signed-receipt-protocol=optional, pkcs7-signature; " if signed_mdn else ""
            sent["Disposition-Notification-To"] = "edi@acme.example"
            sent["Disposition-Notification-Options"] = f"{protocol}signed-receipt-micalg=optional, {micalg}"
        if mdn == "async":
            sent["Receipt-Delivery-Option"] = url or ""
        sent.update(headers or {})
        for name in drop:
            sent.pop(name, None)
        async with aiohttp.ClientSession() as client:
            async with client.post(self.url, data=body, headers=sent) as resp:
                return Reply(resp.status, resp.headers, await resp.read(), message_id)

    def refusals(self) -> list[tuple[str | None, str]]:
        """(partner, detail) of every "as2-refused" event, oldest first."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(events.c.partner, events.c.detail)
                                .where(events.c.step == "as2-refused").order_by(events.c.id)).all()
        return [(partner, detail) for partner, detail in rows]


@contextlib.asynccontextmanager
async def serving(deployment: Deployment, store: Store, **receiver_options: Any) -> AsyncIterator[Endpoint]:
    """Start the receiver and an HttpServer with its routes; stop both (and the writer) afterwards."""
    write = BatchWriter(store)
    received: list[str] = []
    mdns: list[tuple[Partner, str, bytes]] = []

    async def on_mdn(partner: Partner, content_type: str, body: bytes) -> tuple[int, str]:
        mdns.append((partner, content_type, body))
        return 200, "MDN accepted"

    receiver_options.setdefault("on_mdn", on_mdn)
    receiver_options.setdefault("mdn_retry_delays", (0.2, 0.2, 0.2))
    receiver_options.setdefault("mdn_poll_seconds", 0.1)
    receiver = As2Receiver(deployment, store, write, on_message=received.append, **receiver_options)
    server = HttpServer(deployment.settings.http)
    server.add_routes(receiver.routes())
    await receiver.start()
    await server.start()
    try:
        yield Endpoint(deployment, store, write, receiver, server, received, mdns)
    finally:
        await server.stop()
        await receiver.stop()
        write.close()


async def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll ``check`` (sync) until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def raw_exchange(port: int, request: bytes, timeout: float = 20.0) -> tuple[int, str]:
    """Write raw HTTP bytes to the server and read its answer: (status, body text). For malformed/slow clients."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await reader.readexactly(length)
        return status, body.decode("utf-8", "replace")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request_head(content_length: int | None, *, message_id: str = "<raw-1@ACME-AS2>") -> bytes:
    """The header block of a raw POST /as2 from ACME (chunked when ``content_length`` is None)."""
    length = f"Content-Length: {content_length}" if content_length is not None else "Transfer-Encoding: chunked"
    return (f"POST /as2 HTTP/1.1\r\nHost: 127.0.0.1\r\nAS2-From: ACME-AS2\r\nAS2-To: {OUR_ID}\r\n"
            f"Message-ID: {message_id}\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
            f"{length}\r\n\r\n").encode()
