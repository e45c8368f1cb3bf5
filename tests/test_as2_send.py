"""Sending AS2: the as2 connector and ReceiptBook against a real partner AS2 server, and `gateway send`.

The partner is a real aiohttp server on 127.0.0.1 that opens what we send with the AS2 core
and its own key, and answers with MDNs it builds and signs (in the HTTP answer, or POSTed
later to our endpoint, played here by a small aiohttp route in front of ReceiptBook.accept).
Deployments are real files loaded with load_deployment; the store is real SQLite (and
PostgreSQL where `store_url` is used); one test checks the wire bytes with `openssl cms`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from as2_helpers import eventually
from fixtures.as2.pki import pki

from gateway.as2 import build_mdn, mime, parse, parse_disposition_options
from gateway.cli import main
from gateway.config import load_deployment
from gateway.config_as2 import partner_target
from gateway.errors import As2Error, DecryptionFailed, PermanentDeliveryError, RetryableDeliveryError
from gateway.model import DeliveryJob, DeliveryStatus
from gateway.outbound.as2 import As2Connector, ReceiptBook
from gateway.store import Store
from gateway.store.tables import events
from gateway.worker import DeliveryWorker
from gateway.writer import BatchWriter

OUR_ID = "OURCORP"
PARTNER_AS2_ID = "ACME EDI"   # with a space: AS2-From/To must quote it
PAYLOAD = b"ISA*00*          *00*          *ZZ*OURCORP*ZZ*ACME*261126*0930*U*00401*1*0*P*>~\nGS*IN*A*B~\nST*810*1~\n"


@pytest.fixture(scope="module")
def keys():
    return pki()


# ----------------------------------------------------------------------------- a real partner AS2 server


class PartnerServer:
    """The partner's AS2 endpoint: opens our message with its keys and answers with an MDN.

    ``answers`` scripts one answer per request (then ``default``): "sync" (signed MDN),
    "sync-bad-mic", "sync-unsigned", "async" (200, then POST the MDN to Receipt-Delivery-Option),
    "hold" (200; the MDN is POSTed on ``release()``), "silent" (200 and nothing) or an HTTP status.
    A message the partner cannot open gets a negative MDN naming the AS2 error, as real servers do.
    """

    def __init__(self, keys: Any) -> None:
        self.keys = keys
        self.identities = [keys.partner]
        self.answers: list[Any] = []
        self.default: Any = "sync"
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.opened: list[Any] = []
        self.held: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.mdn_answers: list[tuple[int, str]] = []
        self._tasks: set[asyncio.Task] = set()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        app = web.Application()
        app.router.add_post("/as2", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/as2"

    async def stop(self) -> None:
        for task in list(self._tasks):
            await task
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        self.requests.append((headers, body))
        answer = self.answers.pop(0) if self.answers else self.default
        if isinstance(answer, int):
            return web.Response(status=answer, text="partner says no")
        signed_wanted, micalgs = parse_disposition_options(headers.get("Disposition-Notification-Options", ""))
        mic = mic_algorithm = None
        disposition = "processed"
        try:
            opened = parse(headers["Content-Type"], body, identities=self.identities,
                           trusted=[self.keys.ours.certificate], max_size=10 * 2**20,
                           mic_algorithms=micalgs or ("sha-256",),
                           content_disposition=headers.get("Content-Disposition"))
            self.opened.append(opened)
            mic, mic_algorithm = opened.mic, opened.mic_algorithm
        except As2Error as exc:
            disposition = exc.disposition
        if answer == "sync-bad-mic":
            mic = base64.b64encode(b"\0" * 32).decode()
        ctype, mdn = build_mdn(original_message_id=headers["Message-ID"], our_as2_id=headers["AS2-To"].strip('"'),
                               partner_as2_id=headers["AS2-From"].strip('"'), mic=mic, mic_algorithm=mic_algorithm,
                               disposition=disposition,
                               sign=None if answer == "sync-unsigned" else self.keys.partner)
        if answer.startswith("sync"):
            return web.Response(body=mdn, headers={"Content-Type": ctype})
        if answer in ("async", "hold"):
            self.held.append((headers["Receipt-Delivery-Option"], ctype, mdn, headers))
            if answer == "async":
                task = asyncio.create_task(self.release())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return web.Response(text="received")

    async def release(self) -> None:
        """POST the held async MDNs to the Receipt-Delivery-Option URLs, like a partner's MDN sender."""
        held, self.held = self.held, []
        async with aiohttp.ClientSession() as session:
            for url, ctype, mdn, headers in held:
                async with session.post(url, data=mdn, headers={
                        "Content-Type": ctype, "AS2-From": headers["AS2-To"], "AS2-To": headers["AS2-From"],
                        "AS2-Version": "1.2", "Message-ID": "<mdn-1@acme>"}) as resp:
                    self.mdn_answers.append((resp.status, await resp.text()))


class Receiver:
    """Our AS2 endpoint for async MDNs (the lead's inbound receiver, reduced to its on_mdn call)."""

    def __init__(self) -> None:
        self.book: ReceiptBook | None = None
        self.partner: Any = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/as2", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def handle(self, request: web.Request) -> web.Response:
        status, text = await self.book.accept(self.partner, request.headers.get("Content-Type", ""),
                                              await request.read())
        return web.Response(status=status, text=text)


# ----------------------------------------------------------------------------- deployments on disk


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _table(name: str, values: dict[str, Any]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items()) + "\n"


def write_deployment(home: Path, keys: Any, *, partner_url: str, public_url: str, store_url: str,
                     mdn_timeout: float = 5, partner_certs: bytes | None = None, **as2: Any) -> Path:
    """gateway.toml with [store]/[http]/[as2] and partners/ACME.toml with [as2]; returns the home."""
    (home / "certs").mkdir(parents=True, exist_ok=True)
    (home / "partners").mkdir(exist_ok=True)
    key_pem, cert_pem = keys.pem["ours"]
    (home / "certs" / "ours.pem").write_bytes(key_pem + cert_pem)
    (home / "certs" / "acme.crt").write_bytes(partner_certs or keys.pem["partner"][1])
    (home / "gateway.toml").write_text(
        _table("server", {"node": "test-node"})
        + _table("store", {"url": store_url, "blobs": "var/blobs"})
        + _table("http", {"public_url": public_url})
        + _table("as2", {"as2_id": OUR_ID, "identities": ["certs/ours.pem"], "mdn_timeout": mdn_timeout})
        + _table("delivery", {"poll_seconds": 0.05, "lease_seconds": 60})
        + _table("retry", {"initial_delay": 0.2, "max_delay": 1.0}))
    partner_as2 = {"id": PARTNER_AS2_ID, "url": partner_url, "certificates": ["certs/acme.crt"], "timeout": 10, **as2}
    (home / "partners" / "ACME.toml").write_text('id = "ACME"\n\n' + _table("inbox", {"enabled": False})
                                                 + _table("as2", partner_as2))
    return home


def job(key: str = "k" * 32, attempt: int = 1, delivery_id: str = "dlv_1", body: bytes = PAYLOAD) -> DeliveryJob:
    return DeliveryJob(delivery_id=delivery_id, target=partner_target("ACME"), partner="ACME", document_id="out_1",
                       document_type="edi", idempotency_key=key, body=body, attempt=attempt)


class Setup:
    """One test's world: partner server, our MDN endpoint, deployment, store, writer, book, connector."""

    def __init__(self, tmp_path: Path, keys: Any) -> None:
        self.tmp_path = tmp_path
        self.keys = keys
        self.partner = PartnerServer(keys)
        self.receiver = Receiver()
        self.store: Store | None = None

    async def start(self, *, store_url: str | None = None, partner_url: str | None = None,
                    ssl_context: ssl.SSLContext | None = None, **options: Any) -> "Setup":
        url = await self.partner.start(ssl_context)
        public_url = await self.receiver.start()
        store_url = store_url or f"sqlite:///{self.tmp_path / 'var' / 'gateway.sqlite'}"
        self.home = write_deployment(self.tmp_path / "dep", self.keys, partner_url=partner_url or url,
                                     public_url=public_url, store_url=store_url, **options)
        self.deployment = load_deployment(self.home, environ={})
        self.acme = self.deployment.partners["ACME"]
        settings = self.deployment.settings.store
        self.store = await asyncio.to_thread(Store.open, settings.url, settings.blobs)
        self.write = BatchWriter(self.store)
        self.book = ReceiptBook(self.deployment, self.store, self.write)
        self.receiver.book, self.receiver.partner = self.book, self.acme
        self.connector = As2Connector(self.acme, self.deployment, self.book) if self.acme.as2.url else None
        return self

    async def close(self) -> None:
        if self.connector is not None:
            await self.connector.close()
        await self.partner.stop()
        await self.receiver.runner.cleanup()
        if self.store is not None:
            self.write.close()
            self.store.close()

    def message_id(self, key: str = "k" * 32) -> str:
        return f"<gw-{key}@{OUR_ID}>"

    def receipt(self, key: str = "k" * 32):
        return self.store.receipt_for("received", "ACME", self.message_id(key))


@pytest.fixture
async def world(tmp_path, keys, monkeypatch):
    monkeypatch.delenv("GATEWAY_STORE_URL", raising=False)
    setup = Setup(tmp_path, keys)
    yield setup
    await setup.close()


# ----------------------------------------------------------------------------- sync MDNs


async def test_sync_signed_mdn_with_our_mic_delivers_and_stores_the_receipt(world, store_url):
    w = await world.start(store_url=store_url)
    assert await w.connector.send(job()) == 200

    headers, _ = w.partner.requests[0]
    assert headers["AS2-Version"] == "1.2"
    assert headers["AS2-From"] == OUR_ID
    assert headers["AS2-To"] == f'"{PARTNER_AS2_ID}"'
    assert headers["Message-ID"] == w.message_id()
    assert headers["MIME-Version"] == "1.0"
    assert headers["Subject"] and headers["Date"]
    assert headers["Disposition-Notification-To"] == w.deployment.settings.http.base_url + "/as2"
    assert parse_disposition_options(headers["Disposition-Notification-Options"]) == (True, ["sha-256"])
    assert "signed-receipt-micalg=optional, sha-256" in headers["Disposition-Notification-Options"]
    assert "Receipt-Delivery-Option" not in headers
    opened = w.partner.opened[0]
    assert opened.payload == PAYLOAD and opened.signed and opened.encrypted and not opened.compressed
    assert opened.content_type == "application/edi-consent"

    receipt = w.receipt()
    assert receipt is not None
    assert (receipt.disposition, receipt.mic_ok, receipt.signed, receipt.mode, receipt.delivery_id) == (
        "processed", True, True, "sync", "dlv_1")
    assert receipt.mic == f"{opened.mic}, sha-256"
    entity = w.store.blobs.get(receipt.blob_sha256)
    assert entity.startswith(b"Content-Type: multipart/signed;")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the `openssl` command is not on PATH")
async def test_openssl_decrypts_and_verifies_what_we_put_on_the_wire(world, keys, tmp_path):
    w = await world.start()
    assert await w.connector.send(job()) == 200
    headers, body = w.partner.requests[0]
    assert headers["Content-Type"].startswith("application/pkcs7-mime; smime-type=enveloped-data")
    pem = keys.write(tmp_path)
    (tmp_path / "body.p7m").write_bytes(body)

    def openssl(*args: Any) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-in", tmp_path / "body.p7m",
            "-inkey", pem["partner"][0], "-recip", pem["partner"][1], "-out", tmp_path / "signed.mime")
    assert (tmp_path / "signed.mime").read_bytes().startswith(b"Content-Type: multipart/signed;")
    openssl("cms", "-verify", "-binary", "-crlfeol", "-inform", "SMIME", "-in", tmp_path / "signed.mime",
            "-CAfile", pem["ours"][1], "-out", tmp_path / "entity")
    entity_headers, payload = mime.split_entity(mime.Span.of((tmp_path / "entity").read_bytes()))
    assert payload.tobytes() == PAYLOAD
    assert entity_headers["content-type"] == "application/edi-consent"


async def test_mic_mismatch_is_retryable_and_the_receipt_says_so(world):
    w = await world.start()
    w.partner.default = "sync-bad-mic"
    with pytest.raises(RetryableDeliveryError, match="does not carry our MIC"):
        await w.connector.send(job())
    assert w.receipt().mic_ok is False


async def test_negative_mdn_is_retryable_with_the_disposition_in_the_text(world, keys):
    w = await world.start()
    w.partner.identities = [keys.stranger]   # the partner lost its key: it cannot decrypt
    with pytest.raises(RetryableDeliveryError,
                       match="partner ACME answered processed/error: decryption-failed") as caught:
        await w.connector.send(job())
    assert w.message_id() in str(caught.value)
    assert w.receipt().disposition == "processed/error: decryption-failed"


async def test_unsigned_mdn_when_a_signed_one_was_requested_is_retryable(world):
    w = await world.start()
    w.partner.default = "sync-unsigned"
    with pytest.raises(RetryableDeliveryError, match="not signed"):
        await w.connector.send(job())
    assert w.receipt() is None


async def test_unsigned_mdn_is_fine_when_none_was_requested(world):
    w = await world.start(mdn_signed=False)
    w.partner.default = "sync-unsigned"
    assert await w.connector.send(job()) == 200
    headers, _ = w.partner.requests[0]
    assert "Disposition-Notification-Options" not in headers
    assert w.receipt().signed is False


async def test_a_2xx_without_an_mdn_is_retryable_in_sync_mode(world):
    w = await world.start()
    w.partner.default = "silent"
    with pytest.raises(RetryableDeliveryError, match="without an MDN"):
        await w.connector.send(job())


async def test_mdn_none_delivers_on_2xx(world):
    w = await world.start(mdn="none")
    w.partner.default = "silent"
    assert await w.connector.send(job()) == 200
    headers, _ = w.partner.requests[0]
    assert "Disposition-Notification-To" not in headers


# ----------------------------------------------------------------------------- async MDNs


async def test_async_mdn_delivers(world, store_url):
    w = await world.start(store_url=store_url, mdn="async")
    w.partner.default = "async"
    assert await w.connector.send(job()) == 200
    headers, _ = w.partner.requests[0]
    assert headers["Receipt-Delivery-Option"] == w.deployment.settings.http.base_url + "/as2"
    # The send is woken before our endpoint's answer reaches the partner.
    assert await eventually(lambda: w.partner.mdn_answers, "the partner to get our answer", 5) == [
        (200, "MDN received")]
    receipt = w.receipt()
    assert (receipt.mode, receipt.mic_ok, receipt.delivery_id, receipt.signed) == ("async", True, "dlv_1", True)


async def test_async_mdn_received_by_another_node_is_found_in_the_store(world):
    w = await world.start(mdn="async")
    w.partner.default = "async"
    w.receiver.book = ReceiptBook(w.deployment, w.store, w.write)   # node B's endpoint takes the MDN
    assert await w.connector.send(job()) == 200
    receipt = w.receipt()
    # Node B did not know the send in memory: it checked the MIC node A stored before posting.
    assert receipt.mic_ok is True and receipt.delivery_id == job().delivery_id
    assert receipt.mic.startswith(w.partner.opened[0].mic)


async def test_async_mdn_never_arriving_is_retryable_after_the_timeout(world):
    w = await world.start(mdn="async", mdn_timeout=1)
    w.partner.default = "silent"
    with pytest.raises(RetryableDeliveryError, match="no MDN from ACME within 1 s"):
        await w.connector.send(job())


async def test_late_async_mdn_settles_the_retry_without_a_second_post(world):
    w = await world.start(mdn="async", mdn_timeout=1)
    w.partner.default = "hold"
    with pytest.raises(RetryableDeliveryError, match="no MDN"):
        await w.connector.send(job())
    await w.partner.release()   # the MDN arrives after we stopped waiting
    assert w.partner.mdn_answers == [(200, "MDN received")]
    assert w.receipt().mic_ok is True   # nobody was waiting: checked against the MIC stored at sending
    assert await w.connector.send(job(attempt=2)) is None
    assert len(w.partner.requests) == 1


async def test_late_mdn_with_a_wrong_mic_does_not_settle_the_retry(world):
    w = await world.start(mdn="async", mdn_timeout=1)
    w.partner.answers = ["hold"]
    w.partner.default = "async"
    with pytest.raises(RetryableDeliveryError, match="no MDN"):
        await w.connector.send(job())
    await w.partner.release()
    # A different payload under the same key: the stored MDN's MIC is not this content's.
    assert await w.connector.send(job(attempt=2, body=PAYLOAD + b"SE*1*1~\n")) == 200
    assert len(w.partner.requests) == 2


async def test_async_mdn_for_a_message_we_never_sent_is_refused_with_404_and_an_event(world):
    w = await world.start(mdn="async")
    ctype, body = build_mdn(original_message_id="<someone-else@elsewhere>", our_as2_id=PARTNER_AS2_ID,
                            partner_as2_id=OUR_ID, mic=None, mic_algorithm=None, sign=w.keys.partner)
    status, text = await w.book.accept(w.acme, ctype, body)
    assert status == 404 and "<someone-else@elsewhere> is not a message we sent to ACME" in text
    status, text = await w.book.accept(w.acme, "multipart/report; boundary=x", b"garbage")
    assert status == 400 and text.startswith("cannot read the MDN from ACME")
    with w.store.engine.connect() as conn:
        logged = conn.execute(sa.select(events.c.step, events.c.outcome, events.c.partner, events.c.detail)
                              .order_by(events.c.id)).all()
    assert [(step, outcome, partner) for step, outcome, partner, _ in logged] == [
        ("mdn-received", "error", "ACME")] * 2
    assert "is not a message we sent" in logged[0][3] and "cannot read the MDN" in logged[1][3]


async def test_async_mdn_with_a_bad_signature_is_refused(world, keys):
    w = await world.start(mdn="async")
    ctype, body = build_mdn(original_message_id=w.message_id(), our_as2_id=PARTNER_AS2_ID, partner_as2_id=OUR_ID,
                            mic=None, mic_algorithm=None, sign=keys.stranger)
    status, text = await w.book.accept(w.acme, ctype, body)
    assert status == 400 and "ACME" in text
    assert w.receipt() is None


# ----------------------------------------------------------------------------- HTTP outcomes


async def test_http_500_is_retryable_and_the_retry_keeps_the_message_id(world):
    w = await world.start()
    w.partner.answers = [500]
    with pytest.raises(RetryableDeliveryError, match="answered HTTP 500") as caught:
        await w.connector.send(job())
    assert caught.value.status == 500
    assert await w.connector.send(job(attempt=2)) == 200
    assert [h["Message-ID"] for h, _ in w.partner.requests] == [w.message_id()] * 2


async def test_http_400_is_permanent(world):
    w = await world.start()
    w.partner.answers = [400]
    with pytest.raises(PermanentDeliveryError, match="answered HTTP 400: partner says no"):
        await w.connector.send(job())


async def test_connection_refused_is_retryable(world):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    w = await world.start(partner_url=f"http://127.0.0.1:{port}/as2")
    with pytest.raises(RetryableDeliveryError, match=f"cannot reach http://127.0.0.1:{port}/as2"):
        await w.connector.send(job())


def _tls_server_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1 (PEM cert, PEM key)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner-tls")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("trusted", [False, True], ids=["no-ca_file", "ca_file"])
async def test_https_partner_with_a_self_signed_cert_needs_its_ca_file(world, tmp_path, trusted):
    cert, key = _tls_server_cert(tmp_path)
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(cert, key)
    options = {"ca_file": str(cert)} if trusted else {}
    w = await world.start(ssl_context=server_ssl, **options)
    assert w.acme.as2.url.startswith("https://")
    if trusted:
        assert await w.connector.send(job()) == 200
    else:
        with pytest.raises(RetryableDeliveryError, match="certificate verify failed"):
            await w.connector.send(job())
        assert w.partner.requests == []


# ----------------------------------------------------------------------------- algorithms and keys


@pytest.mark.parametrize("cipher", ["3des", "aes128-cbc", "aes192-cbc", "aes256-cbc"])
@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha384", "sha512"])
async def test_algorithm_matrix_round_trips(world, digest, cipher):
    w = await world.start(sign=digest, encrypt=cipher)
    assert await w.connector.send(job()) == 200
    headers, _ = w.partner.requests[0]
    micalg = "sha1" if digest == "sha1" else f"sha-{digest[3:]}"
    assert parse_disposition_options(headers["Disposition-Notification-Options"])[1] == [micalg]
    opened = w.partner.opened[0]
    assert (opened.payload, opened.digest, opened.signed, opened.encrypted) == (PAYLOAD, digest, True, True)
    assert w.receipt().mic_ok is True


@pytest.mark.parametrize("compress", ["before-signing", "after-signing"])
async def test_compression_round_trips(world, compress):
    w = await world.start(compress=compress, binary_transfer=False)
    assert await w.connector.send(job()) == 200
    opened = w.partner.opened[0]
    assert (opened.payload, opened.compressed, opened.signed, opened.encrypted) == (PAYLOAD, True, True, True)
    assert w.receipt().mic_ok is True


async def test_unsigned_unencrypted_message_and_bare_micalg_spelling(world):
    w = await world.start(sign="", encrypt="", micalg_spelling="bare")
    assert await w.connector.send(job()) == 200
    headers, body = w.partner.requests[0]
    assert "signed-receipt-micalg=optional, sha256" in headers["Disposition-Notification-Options"]
    assert headers["Content-Type"] == "application/edi-consent"
    assert body == PAYLOAD
    assert 'filename="out_1.edi"' in headers["Content-Disposition"]
    assert w.receipt().mic_ok is True


def _expired_cert(identity: Any) -> bytes:
    """A certificate for ``identity``'s key that expired a month ago (the partner's old one)."""
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ACME OLD")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(identity.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=400))
            .not_valid_after(now - dt.timedelta(days=30)).sign(identity.key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


async def test_key_rollover_encrypts_to_the_partners_valid_certificate(world, keys):
    old = keys.ours_next   # stands in for the partner's retired key pair
    w = await world.start(partner_certs=_expired_cert(old) + keys.pem["partner"][1])
    assert len(w.acme.as2.certificates) == 2
    assert await w.connector.send(job()) == 200   # the partner server holds only its new key
    headers, body = w.partner.requests[0]
    with pytest.raises(DecryptionFailed):
        parse(headers["Content-Type"], body, identities=[old], trusted=[keys.ours.certificate], max_size=2**20)


async def test_no_valid_partner_certificate_is_permanent(world, keys):
    w = await world.start(partner_certs=_expired_cert(keys.partner))
    with pytest.raises(PermanentDeliveryError, match="none of its certificates is valid now"):
        await w.connector.send(job())
    assert w.partner.requests == []


# ----------------------------------------------------------------------------- gateway send


def run_cli(home: Path, *args: str):
    return CliRunner().invoke(main, ["--home", str(home), *args])


async def test_gateway_send_waits_for_delivery_and_shows_the_mdn(world, store_url, tmp_path):
    w = await world.start(store_url=store_url)
    connectors = {partner_target("ACME"): w.connector}
    worker = DeliveryWorker(w.store, w.write, w.deployment.targets, connectors, owner="test-node", workers=2,
                            per_target=2, lease_seconds=60, poll_seconds=0.05)
    worker.start()
    try:
        edi = tmp_path / "invoice-1.x12"
        edi.write_bytes(PAYLOAD)
        result = await asyncio.to_thread(run_cli, w.home, "send", str(edi), "--partner", "ACME", "--timeout", "30")
    finally:
        await worker.stop()
    assert result.exit_code == 0, result.output
    assert "queued invoice-1.x12 for ACME (as2:ACME): message msg" in result.output
    assert "status      delivered after 1 attempt(s)" in result.output
    assert "MDN         processed (MIC matches)" in result.output
    assert w.partner.opened[0].payload == PAYLOAD
    assert w.partner.opened[0].filename == "invoice-1.x12"   # the submitted file name travels with it


async def test_gateway_send_no_wait_queues_the_delivery(world, tmp_path):
    w = await world.start()
    edi = tmp_path / "invoice-2.x12"
    edi.write_bytes(PAYLOAD)
    result = await asyncio.to_thread(run_cli, w.home, "send", str(edi), "--partner", "ACME", "--no-wait", "--json")
    assert result.exit_code == 0, result.output
    ids = json.loads(result.output[result.output.index("{"):])
    delivery = w.store.delivery(ids["delivery_id"])
    assert (delivery.status, delivery.target, delivery.partner) == (DeliveryStatus.QUEUED, "as2:ACME", "ACME")
    assert w.store.message(ids["message_id"]).filename == "invoice-2.x12"
    assert w.partner.requests == []


async def test_gateway_send_times_out_when_nothing_sends_it(world, tmp_path):
    w = await world.start()
    edi = tmp_path / "invoice-3.x12"
    edi.write_bytes(PAYLOAD)
    result = await asyncio.to_thread(run_cli, w.home, "send", str(edi), "--partner", "ACME", "--timeout", "0.3")
    assert result.exit_code == 1
    assert "is `gateway serve` running?" in result.output


async def test_gateway_send_refuses_a_partner_without_an_as2_url(world, tmp_path):
    w = await world.start(url="")
    edi = tmp_path / "invoice-4.x12"
    edi.write_bytes(PAYLOAD)
    result = await asyncio.to_thread(run_cli, w.home, "send", str(edi), "--partner", "ACME")
    assert result.exit_code != 0
    assert "partner ACME has no outbound channel: set [as2] url, [sftp_remote] upload_dir or an [sftp] account in partners/ACME.toml" in result.output
    result = await asyncio.to_thread(run_cli, w.home, "send", str(edi), "--partner", "NOPE")
    assert result.exit_code != 0 and "unknown partner 'NOPE'" in result.output
