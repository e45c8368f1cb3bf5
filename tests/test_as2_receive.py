"""The AS2 receiving endpoint end to end: real HTTP on 127.0.0.1, real store, gateway.as2 and `openssl cms` peers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from as2_helpers import (OUR_ID, PASSWORD, Endpoint, eventually, raw_exchange, request_head, serving,
                         write_deployment)
from fixtures.as2.pki import pki
from structlog.testing import capture_logs

from gateway.as2 import Outbound, build, build_mdn, parse_mdn
from gateway.config_as2 import HttpSettings
from gateway.http import HttpServer, server_ssl_context
from gateway.inbound.as2_mdn import AsyncMdnSender
from gateway.model import Channel, MessageStatus, Received
from gateway.store import Store

EDI_CRLF = b"UNB+UNOA:2+ACME+GATEWAY+240101:1200+1'\r\nUNH+1+ORDERS:D:96A:UN'\r\nBGM+220+PO1'\r\nUNZ+1+1'\r\n"
EDI_LF = b"ISA*00*          *00*          *ZZ*ACME*ZZ*GATEWAY*240101*1200*U*00401*1*0*P*>~\nGS*PO*A*B~\nST*850*1~\n"
BINARY = bytes(random.Random(7).randrange(256) for _ in range(40_000))
PAYLOADS = {"crlf-text": EDI_CRLF, "lf-text": EDI_LF, "binary": BINARY}


@pytest.fixture(scope="session")
def keys():
    return pki()


@pytest.fixture
def deployment(tmp_path, keys):
    return write_deployment(tmp_path / "home", keys)


@pytest.fixture
def lite_store(tmp_path):
    """A SQLite store for tests about HTTP behaviour (the store-heavy tests also run on PostgreSQL)."""
    with Store.open(f"sqlite:///{tmp_path / 'lite.sqlite'}", tmp_path / "blobs") as store:
        yield store


@pytest.fixture
async def gw(deployment, lite_store):
    async with serving(deployment, lite_store) as endpoint:
        yield endpoint


@pytest.fixture
async def gw_both(deployment, store):
    """The endpoint on the conftest ``store`` (SQLite and PostgreSQL)."""
    async with serving(deployment, store) as endpoint:
        yield endpoint


def message(keys, payload: bytes = EDI_CRLF, **options) -> Outbound:
    """What ACME's AS2 software sends by default: signed by ACME, encrypted to us."""
    options.setdefault("sign", keys.partner)
    options.setdefault("encrypt", [keys.ours.certificate])
    return build(payload, filename="po.edi", **options)


def stored_for(gw: Endpoint, message_id: str, partner: str = "ACME"):
    """The receipt we sent for an AS2 Message-ID and the message it belongs to."""
    receipt = gw.store.receipt_for("sent", partner, message_id)
    assert receipt is not None, f"no MDN stored for {message_id}"
    return receipt, gw.store.message(receipt.message_id)


# ----------------------------------------------------------------------------- accepted messages


@pytest.mark.parametrize("compress", ["before-signing", "after-signing"])
@pytest.mark.parametrize("name", PAYLOADS)
async def test_payload_comes_out_byte_identical_with_a_signed_mdn_and_the_right_mic(gw_both, keys, name, compress):
    out = message(keys, PAYLOADS[name], compress=compress)
    reply = await gw_both.post(out.body, out.content_type)
    assert reply.status == 200
    assert reply.headers["AS2-From"] == OUR_ID and reply.headers["AS2-To"] == "ACME-AS2"
    assert reply.headers["AS2-Version"] == "1.2" and reply.headers["MIME-Version"] == "1.0"
    assert reply.headers["Message-ID"].startswith("<") and reply.headers["Message-ID"].endswith(f"@{OUR_ID}>")
    mdn = reply.mdn(keys)
    assert mdn.signed and mdn.ok and mdn.original_message_id == reply.message_id
    assert mdn.mic_matches(out.mic, out.mic_algorithm)

    receipt, stored = stored_for(gw_both, reply.message_id)
    assert gw_both.store.raw(stored.id) == PAYLOADS[name]
    assert (stored.channel, stored.partner, stored.filename) == ("as2", "ACME", "po.edi")
    assert stored.source_ref == "as2:" + reply.message_id and stored.status == MessageStatus.RECEIVED
    assert gw_both.received == [stored.id]
    assert (receipt.disposition, receipt.mode, receipt.status, receipt.signed) == ("processed", "sync", "done", True)
    assert receipt.mic == out.mic
    # The MDN as stored is the one answered; the transport record is the request, without credentials.
    entity = gw_both.store.blobs.get(receipt.blob_sha256)
    assert entity.endswith(reply.body) and entity.startswith(b"Content-Type: " + reply.headers["Content-Type"].encode())
    transport = gw_both.store.blobs.get(receipt.transport_sha256)
    assert transport.endswith(b"\r\n\r\n" + out.body) and f"Message-ID: {reply.message_id}\r\n".encode() in transport


async def test_message_is_committed_before_the_mdn_reaches_the_client(gw_both, keys, store_url, blob_dir):
    out = message(keys)
    reply = await gw_both.post(out.body, out.content_type)
    assert reply.mdn(keys).ok
    # Read through a second, independent Store on the same database: only committed rows are visible.
    with Store(store_url, blob_dir) as other:
        receipt = other.receipt_for("sent", "ACME", reply.message_id)
        assert receipt is not None and other.raw(receipt.message_id) == EDI_CRLF


@pytest.mark.parametrize("signed_mdn, digest, micalg", [(False, "sha512", "sha-512"), (True, "sha384", "sha384"),
                                                        (True, "sha1", "SHA1")])
async def test_mdn_follows_the_disposition_notification_options(gw, keys, signed_mdn, digest, micalg):
    out = message(keys, digest=digest)
    reply = await gw.post(out.body, out.content_type, signed_mdn=signed_mdn, micalg=micalg)
    mdn = reply.mdn(keys, signed=signed_mdn)
    assert mdn.signed is signed_mdn and mdn.ok
    assert mdn.mic_algorithm == out.mic_algorithm and mdn.mic_matches(out.mic, out.mic_algorithm)


async def test_no_mdn_requested_gets_a_plain_200(gw, keys):
    out = message(keys)
    reply = await gw.post(out.body, out.content_type, mdn="none")
    assert reply.status == 200 and reply.text.strip() == "message received (processed)"
    receipt, stored = stored_for(gw, reply.message_id)
    assert receipt.mode == "none" and gw.store.raw(stored.id) == EDI_CRLF


async def test_get_explains_the_endpoint(gw):
    async with aiohttp.ClientSession() as client, client.get(gw.url) as resp:
        assert resp.status == 200 and (await resp.text()).strip() == "AS2 endpoint: POST messages here"


# ----------------------------------------------------------------------------- interop: openssl cms as the partner


def openssl(*args: str | Path) -> bytes:
    return subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True).stdout


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the `openssl` command is not on PATH")
@pytest.mark.parametrize("name", PAYLOADS)
async def test_openssl_signed_and_encrypted_message(gw, keys, tmp_path, name):
    pem = keys.write(tmp_path)
    entity = tmp_path / "entity"
    entity.write_bytes(b'Content-Type: application/edi-consent\r\nContent-Disposition: attachment; filename="x.edi"'
                       b"\r\n\r\n" + PAYLOADS[name])
    signed = tmp_path / "signed"
    signed.write_bytes(openssl("cms", "-sign", "-binary", "-crlfeol", "-outform", "SMIME", "-md", "sha256",
                               "-signer", pem["partner"][1], "-inkey", pem["partner"][0], "-in", entity))
    enveloped = openssl("cms", "-encrypt", "-binary", "-aes256", "-outform", "DER", "-in", signed, pem["ours"][1])
    reply = await gw.post(enveloped, 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"')
    mdn = reply.mdn(keys)
    assert mdn.ok
    assert mdn.mic_matches(base64.b64encode(hashlib.sha256(entity.read_bytes()).digest()).decode(), "sha-256")
    _, stored = stored_for(gw, reply.message_id)
    assert gw.store.raw(stored.id) == PAYLOADS[name] and stored.filename == "x.edi"


# ----------------------------------------------------------------------------- negative MDNs


def _tampered(keys) -> Outbound:
    out = build(EDI_CRLF, sign=keys.partner)
    return Outbound(out.content_type, out.body.replace(b"BGM+220+PO1", b"BGM+220+PO9"), out.mic, out.mic_algorithm)


NEGATIVE = {
    "decryption-failed": ("ACME-AS2", lambda k: message(k, encrypt=[k.stranger.certificate])),
    "authentication-failed": ("ACME-AS2", lambda k: message(k, sign=k.stranger)),
    "integrity-check-failed": ("LAX-AS2", _tampered),
    "insufficient-message-security": ("ACME-AS2", lambda k: message(k, sign=None)),
    "decompression-failed": ("ACME-AS2", lambda k: message(k, b"0" * (2 * 2**20), compress="before-signing")),
}


@pytest.mark.parametrize("disposition", NEGATIVE)
async def test_negative_mdn_and_the_body_kept_as_a_failed_message(gw, keys, disposition):
    as2_from, make = NEGATIVE[disposition]
    out = make(keys)
    reply = await gw.post(out.body, out.content_type, as2_from=as2_from)
    assert reply.status == 200
    mdn = reply.mdn(keys)
    assert mdn.signed and not mdn.ok and mdn.mic is None
    assert (mdn.disposition, mdn.modifier) == ("processed", f"error: {disposition}")
    receipt, stored = stored_for(gw, reply.message_id, partner="LAX" if as2_from == "LAX-AS2" else "ACME")
    assert receipt.disposition == f"processed/error: {disposition}"
    assert stored.status == MessageStatus.FAILED and gw.store.raw(stored.id) == out.body
    assert repr(reply.message_id) in stored.error and f"partner {stored.partner}" in stored.error
    assert gw.received == []


async def test_truncated_message_gets_a_negative_mdn_and_is_kept(gw, keys):
    # A partner's broken client sends half the ciphertext with a matching Content-Length.
    out = message(keys)
    reply = await gw.post(out.body[: len(out.body) // 2], out.content_type)
    mdn = reply.mdn(keys)
    assert reply.status == 200 and not mdn.ok and mdn.modifier.startswith("error: ")
    receipt, stored = stored_for(gw, reply.message_id)
    assert receipt.disposition == f"processed/{mdn.modifier}"
    assert stored.status == MessageStatus.FAILED and gw.received == []


async def test_connection_cut_mid_body_stores_nothing_and_is_logged(gw, keys):
    out = message(keys)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.server.port)
    writer.write(request_head(len(out.body)) + out.body[:100])
    await writer.drain()
    writer.close()   # the sender dies with most of the body unsent
    refusals = await eventually(gw.refusals, "the refusal event")
    assert "incomplete request body" in refusals[0][1]
    assert gw.store.search_messages() == [] and list(gw.tmp_dir.iterdir()) == []


# ----------------------------------------------------------------------------- refusals (no MDN)


@pytest.mark.parametrize("post_options, status, text", [
    ({"as2_from": "NOBODY"}, 403, "unknown AS2-From 'NOBODY'"),
    ({"as2_to": "SOMEONE ELSE"}, 404, "AS2-To 'SOMEONE ELSE' is not this gateway"),
    ({"drop": ("Message-ID",)}, 400, "missing Message-ID header"),
    ({"drop": ("AS2-From",)}, 400, "missing AS2-From header"),
    ({"mdn": "async", "url": "file:///etc/passwd"}, 400, "Receipt-Delivery-Option must be an http:// or https:// URL"),
    ({"as2_from": "LAX-AS2", "mdn": "async", "url": "http://127.0.0.1:9/mdn"}, 400,
     "Receipt-Delivery-Option host 127.0.0.1 is not a public address (the partner's [as2] async_mdn_hosts can "
     "allow it)"),
    ({"as2_from": "LAX-AS2", "mdn": "async", "url": "http://[::ffff:10.0.0.1]/mdn"}, 400,
     "Receipt-Delivery-Option host ::ffff:10.0.0.1 is not a public address (the partner's [as2] async_mdn_hosts "
     "can allow it)"),
    ({"as2_from": "FENCED-AS2"}, 403, "client address 127.0.0.1 is not allowed for AS2-From 'FENCED-AS2'"),
])
async def test_refused_requests_get_a_clear_status_and_an_event(gw, keys, post_options, status, text):
    out = message(keys)
    reply = await gw.post(out.body, out.content_type, **post_options)
    assert (reply.status, reply.text.strip()) == (status, text)
    refusals = gw.refusals()
    assert len(refusals) == 1 and f"HTTP {status}: {text}" in refusals[0][1]
    assert gw.store.search_messages() == [] and gw.received == []


async def test_headers_that_are_not_text_get_a_400_not_a_crash(gw):
    # Bytes that are not UTF-8 in a header we store, and a Basic credential that is not ASCII.
    bad_id = request_head(10, message_id="<raw-\xff@ACME-AS2>").replace(b"\xc3\xbf", b"\xff") + b"0123456789"
    status, text = await raw_exchange(gw.server.port, bad_id)
    assert (status, text.strip()) == (400, "the Message-ID header is not valid UTF-8 text")
    auth = request_head(10).replace(b"AS2-From: ACME-AS2", b"AS2-From: AUTH-AS2").replace(
        b"\r\n\r\n", "\r\nAuthorization: Basic \u00e9\u00e9\r\n\r\n".encode("utf-8")) + b"0123456789"
    status, text = await raw_exchange(gw.server.port, auth)
    assert (status, text.strip()) == (401, "authentication required")
    assert gw.store.search_messages() == []


async def test_basic_auth_and_no_credentials_in_logs_events_or_records(gw, keys):
    out = message(keys)
    with capture_logs() as logged:
        missing = await gw.post(out.body, out.content_type, as2_from="AUTH-AS2")
        wrong = await gw.post(out.body, out.content_type, as2_from="AUTH-AS2",
                              headers={"Authorization": aiohttp.encode_basic_auth("acme", "guess")})
        right = await gw.post(out.body, out.content_type, as2_from="AUTH-AS2",
                              headers={"Authorization": aiohttp.encode_basic_auth("acme", PASSWORD)})
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert wrong.status == 401
    assert right.status == 200 and right.mdn(keys).ok
    assert [partner for partner, _ in gw.refusals()] == ["AUTH", "AUTH"]
    transport = gw.store.blobs.get(gw.store.receipt_for("sent", "AUTH", right.message_id).transport_sha256)
    secret = aiohttp.encode_basic_auth("acme", PASSWORD).split()[1]
    assert b"Authorization" not in transport and secret.encode() not in transport
    texts = [repr(entry) for entry in logged] + [detail for _, detail in gw.refusals()]
    assert any("status': 401" in t for t in texts)  # the refusals were logged...
    assert not any(PASSWORD in t or secret in t for t in texts)  # ...without the credentials


# ----------------------------------------------------------------------------- body limits


async def test_content_length_over_the_cap_is_refused_at_once(gw):
    status, text = await raw_exchange(gw.server.port, request_head(10 * 2**20))
    assert status == 413 and "over the limit of 262144 bytes" in text
    assert list(gw.tmp_dir.iterdir()) == []


async def test_chunked_body_over_the_cap_is_refused_and_no_temp_file_is_left(gw):
    async def chunks():
        for _ in range(8):
            yield b"x" * 2**16

    headers = {"AS2-From": "ACME-AS2", "AS2-To": OUR_ID, "Message-ID": "<big@ACME-AS2>",
               "Content-Type": "application/pkcs7-mime; smime-type=enveloped-data"}
    async with aiohttp.ClientSession() as client, client.post(gw.url, data=chunks(), headers=headers) as resp:
        assert resp.status == 413 and "over the limit" in await resp.text()
    assert list(gw.tmp_dir.iterdir()) == []
    assert gw.store.search_messages() == [] and "HTTP 413" in gw.refusals()[0][1]


async def test_slow_body_gets_408(tmp_path, keys, lite_store):
    deployment = write_deployment(tmp_path / "slow", keys, request_timeout=1)
    async with serving(deployment, lite_store) as gw:
        # Promise 1000 bytes, send 10, then stall: the read must end at request_timeout.
        status, text = await raw_exchange(gw.server.port, request_head(1000) + b"0123456789")
        assert status == 408 and "not received within 1 s" in text
        assert list(gw.tmp_dir.iterdir()) == [] and gw.store.search_messages() == []


# ----------------------------------------------------------------------------- duplicates and recovery


async def test_duplicate_message_id_is_answered_with_the_original_mdn_and_stored_once(gw_both, keys):
    out = message(keys)
    first = await gw_both.post(out.body, out.content_type)
    again = await gw_both.post(out.body, out.content_type, message_id=first.message_id)
    assert first.mdn(keys).ok and again.status == 200
    assert again.body == first.body and again.headers["Content-Type"] == first.headers["Content-Type"]
    receipt, stored = stored_for(gw_both, first.message_id)
    assert [m.id for m in gw_both.store.search_messages(partner="ACME")] == [stored.id]
    assert gw_both.received == [stored.id]
    duplicate = [e for e in gw_both.store.timeline(stored.id) if (e.step, e.outcome) == ("received", "duplicate")]
    assert len(duplicate) == 1 and repr(first.message_id) in duplicate[0].detail


async def test_duplicate_of_a_failed_message_gets_the_original_negative_mdn(gw, keys):
    bad = message(keys, encrypt=[keys.stranger.certificate])
    first = await gw.post(bad.body, bad.content_type)
    good = message(keys)
    again = await gw.post(good.body, good.content_type, message_id=first.message_id)
    assert again.mdn(keys).modifier == "error: decryption-failed"
    assert len(gw.store.search_messages(partner="ACME")) == 1 and gw.received == []


async def test_message_stored_before_a_crash_gets_its_mdn_and_is_not_stored_again(gw_both, keys):
    out = message(keys)
    message_id = "<crashed-1@ACME-AS2>"
    # As if the gateway died after committing the message and before storing/sending its MDN.
    before = gw_both.store.receive(Received(raw=EDI_CRLF, channel=Channel.AS2, partner="ACME", filename="po.edi",
                                            source_ref="as2:" + message_id)).message
    reply = await gw_both.post(out.body, out.content_type, message_id=message_id)
    mdn = reply.mdn(keys)
    assert mdn.ok and mdn.mic_matches(out.mic, out.mic_algorithm)
    receipt, stored = stored_for(gw_both, message_id)
    assert stored.id == before.id
    assert [m.id for m in gw_both.store.search_messages(partner="ACME")] == [before.id]
    assert gw_both.received == []  # the start-up recovery (pending_messages) runs it, not a second hand-over


async def test_store_failure_answers_503_without_an_mdn_and_the_retry_succeeds(gw, keys):
    out = message(keys)
    blobs = gw.store.blobs.root
    shutil.rmtree(blobs, ignore_errors=True)
    blobs.write_text("a file where the blob directory should be")  # every blob write now fails
    refused = await gw.post(out.body, out.content_type)
    assert refused.status == 503 and "retry later" in refused.text
    assert not refused.headers["Content-Type"].startswith(("multipart/", "application/pkcs7"))
    assert gw.store.search_messages() == [] and gw.store.receipt_for("sent", "ACME", refused.message_id) is None
    blobs.unlink()
    blobs.mkdir()
    retried = await gw.post(out.body, out.content_type, message_id=refused.message_id)
    assert retried.mdn(keys).ok
    _, stored = stored_for(gw, refused.message_id)
    assert gw.store.raw(stored.id) == EDI_CRLF and gw.received == [stored.id]


# ----------------------------------------------------------------------------- async MDNs


class MdnCatcher:
    """The partner's async-MDN endpoint: answers the given statuses in turn (then 200), records requests."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server = HttpServer(HttpSettings(host="127.0.0.1", port=0))
        self.server.add_routes([web.post("/mdn", self.handle)])

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    @property
    def url(self) -> str:
        return self.server.url + "/mdn"


async def test_async_mdn_is_posted_and_retried_after_a_500(gw_both, keys):
    catcher = MdnCatcher(500)
    await catcher.server.start()
    url = catcher.url
    try:
        out = message(keys)
        reply = await gw_both.post(out.body, out.content_type, mdn="async", url=catcher.url)
        assert reply.status == 200 and "asynchronously" in reply.text
        await eventually(lambda: len(catcher.requests) >= 2, "the async MDN to be retried")
        receipt = await eventually(
            lambda: (r := gw_both.store.receipt_for("sent", "ACME", reply.message_id)).status == "done" and r,
            "the async MDN to be settled")
    finally:
        await catcher.server.stop()
    assert (receipt.mode, receipt.attempts, receipt.url) == ("async", 2, url)
    headers, body = catcher.requests[-1]
    assert headers["AS2-From"] == OUR_ID and headers["AS2-To"] == "ACME-AS2" and headers["AS2-Version"] == "1.2"
    mdn = parse_mdn(headers["Content-Type"], body, trusted=[keys.ours.certificate], require_signature=True)
    assert mdn.ok and mdn.original_message_id == reply.message_id and mdn.mic_matches(out.mic, out.mic_algorithm)
    assert catcher.requests[0][1] == body  # the retry sends the stored MDN, not a new one
    steps = [(e.step, e.outcome) for e in gw_both.store.timeline(receipt.message_id)]
    assert ("mdn-delivery", "retrying") in steps and ("mdn-delivered", "ok") in steps


async def test_async_mdn_to_a_name_that_resolves_to_loopback_is_never_sent(gw, keys):
    # LAX does not allow private MDN hosts: "localhost" passes the URL check, but the address the
    # connection would use is loopback, so nothing is sent there (server-side request forgery).
    catcher = MdnCatcher(200)
    await catcher.server.start()
    try:
        url = catcher.url.replace("127.0.0.1", "localhost")
        out = build(EDI_CRLF)
        reply = await gw.post(out.body, out.content_type, as2_from="LAX-AS2", mdn="async", url=url, signed_mdn=False)
        assert reply.status == 200
        receipt = await eventually(
            lambda: (r := gw.store.receipt_for("sent", "LAX", reply.message_id)) and r.attempts >= 1 and r,
            "the first async MDN attempt")
        assert "resolves to a private, loopback or reserved address" in receipt.error
        assert catcher.requests == []
    finally:
        await catcher.server.stop()


async def test_pending_async_mdn_is_sent_after_a_restart(gw, keys):
    catcher = MdnCatcher()
    await catcher.server.start()
    await gw.receiver.sender.stop()  # the gateway "dies" before sending the MDN it stored
    out = message(keys)
    reply = await gw.post(out.body, out.content_type, mdn="async", url=catcher.url)
    assert reply.status == 200 and gw.store.receipt_for("sent", "ACME", reply.message_id).status == "pending"
    restarted = AsyncMdnSender(gw.deployment, gw.store, gw.write, poll_seconds=0.1)
    await restarted.start()
    try:
        await eventually(lambda: gw.store.receipt_for("sent", "ACME", reply.message_id).status == "done",
                         "the restarted sender to deliver the MDN")
    finally:
        await restarted.stop()
        await catcher.server.stop()
    assert len(catcher.requests) == 1


async def test_duplicate_asking_for_an_async_mdn_gets_the_original_mdn_posted_again(gw, keys):
    catcher = MdnCatcher()
    await catcher.server.start()
    try:
        out = message(keys)
        first = await gw.post(out.body, out.content_type, mdn="async", url=catcher.url)
        await eventually(lambda: len(catcher.requests) == 1, "the first async MDN")
        again = await gw.post(out.body, out.content_type, mdn="async", url=catcher.url, message_id=first.message_id)
        assert again.status == 200
        await eventually(lambda: len(catcher.requests) == 2, "the async MDN to be sent again")
    finally:
        await catcher.server.stop()
    assert catcher.requests[0][1] == catcher.requests[1][1]
    assert len(gw.store.search_messages(partner="ACME")) == 1 and len(gw.received) == 1


async def test_async_mdn_gives_up_after_the_last_retry(deployment, lite_store, keys):
    catcher = MdnCatcher(503, 503, 503)
    await catcher.server.start()
    try:
        async with serving(deployment, lite_store, mdn_retry_delays=(0.1, 0.1)) as gw:
            out = message(keys)
            reply = await gw.post(out.body, out.content_type, mdn="async", url=catcher.url)
            receipt = await eventually(
                lambda: (r := lite_store.receipt_for("sent", "ACME", reply.message_id)).status == "failed" and r,
                "the async MDN to be given up")
    finally:
        await catcher.server.stop()
    assert receipt.attempts == 3 and len(catcher.requests) == 3 and "answered HTTP 503" in receipt.error


# ----------------------------------------------------------------------------- partners' MDNs, errors, TLS


@pytest.mark.parametrize("signed", [True, False])
async def test_partner_mdns_go_to_on_mdn(gw, keys, signed):
    content_type, body = build_mdn(original_message_id="<ours-1@GATEWAY>", our_as2_id="ACME-AS2",
                                   partner_as2_id=OUR_ID, mic=None, mic_algorithm=None,
                                   sign=keys.partner if signed else None)
    reply = await gw.post(body, content_type, mdn="none")
    assert (reply.status, reply.text) == (200, "MDN accepted")
    [(partner, got_type, got_body)] = gw.mdns
    assert (partner.id, got_type, got_body) == ("ACME", content_type, body)
    assert gw.store.search_messages() == []


async def test_unexpected_error_is_a_generic_500(deployment, lite_store, keys):
    async def broken(partner, content_type, body):
        raise RuntimeError("secret internals")

    async with serving(deployment, lite_store, on_mdn=broken) as gw:
        content_type, body = build_mdn(original_message_id="<x@GATEWAY>", our_as2_id="ACME-AS2",
                                       partner_as2_id=OUR_ID, mic=None, mic_algorithm=None)
        reply = await gw.post(body, content_type, mdn="none")
    assert reply.status == 500 and "secret" not in reply.text and "internal error" in reply.text


def _tls_files(directory: Path) -> tuple[Path, Path]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_listener_with_verified_tls(tmp_path):
    cert, key = _tls_files(tmp_path)
    assert server_ssl_context(str(cert), str(key)).minimum_version == ssl.TLSVersion.TLSv1_2
    server = HttpServer(HttpSettings(host="127.0.0.1", port=0, tls_cert=cert, tls_key=key))
    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    server.add_routes([web.get("/ping", ping)])
    await server.start()
    try:
        assert server.url == f"https://127.0.0.1:{server.port}"
        verified = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as client:
            async with client.get(server.url + "/ping", ssl=verified) as resp:
                assert (resp.status, await resp.text()) == (200, "pong")
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # verification stays on
                await client.get(server.url + "/ping")
    finally:
        await server.stop()


async def test_access_log_names_the_request_but_never_its_headers(gw, keys):
    out = message(keys)
    with capture_logs() as logged:
        reply = await gw.post(out.body, out.content_type, headers={"X-Probe": "probe-value-123"})
    [access] = [entry for entry in logged if entry["event"] == "http"]
    assert {k: access[k] for k in ("method", "path", "status", "remote")} == {
        "method": "POST", "path": "/as2", "status": reply.status, "remote": "127.0.0.1"}
    assert isinstance(access["ms"], float)
    assert "probe-value-123" not in repr(logged)
