"""Hostile XML and AS2 traffic: entity tricks, oversized trees, forged signatures, replays, huge headers, slowloris.

Complements tests/test_xml.py (XXE file/http, billion laughs, DOCTYPE in UTF-16, deep nesting, byte cap
on a small limit) and tests/test_as2_receive.py (signature by an untrusted key, repeated Message-ID,
a body that stops arriving): what is already there is not repeated here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from as2_helpers import Endpoint, request_head, serving, write_deployment
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from fixtures.as2.pki import pki

from gateway.as2 import Identity, build
from gateway.edi.xml import DEFAULT_MAX_BYTES, REFUSED_DTD, parse_xml
from gateway.errors import ParseError
from gateway.model import MessageStatus
from gateway.store import Store
from harness import REPO, GatewayProcess, drop, edifact_order, make_deployment, wait_for

PASSWD_LINE = Path("/etc/passwd").read_bytes().splitlines()[0]          # e.g. b"root:x:0:0:root:/root:/bin/bash"


# ============================================================================ XML, in the reader


def test_quadratic_blowup_is_refused_before_any_expansion() -> None:
    # One 50 KB entity referenced 50,000 times: 2.5 GB if expanded, no nesting for libxml2's guard to see.
    raw = b'<!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><r>' + b"&a;" * 50_000 + b"</r>"
    started = time.perf_counter()
    with pytest.raises(ParseError, match=f"^line 1 column 1: the document has a DOCTYPE: {REFUSED_DTD}$"):
        parse_xml(raw)
    assert time.perf_counter() - started < 0.5


def test_doctype_spelled_in_utf7_is_refused_and_no_file_is_read() -> None:
    # "<!DOCTYPE" written as UTF-7 shifted base64: invisible to a byte scan for "<!DOCTYPE".
    doctype = b'+ADw-!DOCTYPE r +AFs-+ADw-!ENTITY e SYSTEM +ACI-file:///etc/passwd+ACI-+AD4-+AF0-+AD4-'
    raw = b'<?xml version="1.0" encoding="UTF-7"?>' + doctype + b"<r>&e;</r>"
    try:
        tree = parse_xml(raw)
    except ParseError as exc:
        assert PASSWD_LINE.decode() not in str(exc)
        return
    assert PASSWD_LINE not in (tree.getroot().text or "").encode(), "an external entity was resolved"


def test_xinclude_is_not_processed() -> None:
    raw = (b'<r xmlns:xi="http://www.w3.org/2001/XInclude">'
           b'<xi:include href="file:///etc/passwd" parse="text"/></r>')
    root = parse_xml(raw).getroot()
    assert [child.tag for child in root] == ["{http://www.w3.org/2001/XInclude}include"]
    assert PASSWD_LINE.decode() not in "".join(root.itertext())


def test_text_node_over_libxml2_limit_is_refused() -> None:
    # huge_tree stays off: libxml2 refuses a text node over 10,000,000 bytes instead of buffering it.
    started = time.perf_counter()
    with pytest.raises(ParseError, match="Text node too long"):
        parse_xml(b"<r>" + b"x" * 12_000_000 + b"</r>")
    assert time.perf_counter() - started < 2


def test_document_over_the_default_byte_cap_is_refused_without_parsing() -> None:
    raw = b"<r>" + b" " * DEFAULT_MAX_BYTES + b"</r>"
    started = time.perf_counter()
    with pytest.raises(ParseError, match=f"has {len(raw)} bytes, more than the limit of {DEFAULT_MAX_BYTES}"):
        parse_xml(raw)
    assert time.perf_counter() - started < 0.5


def test_name_longer_than_libxml2_allows_is_refused() -> None:
    with pytest.raises(ParseError, match="Name too long"):
        parse_xml(b"<" + b"a" * 2_000_000 + b"/>")


def test_wide_tree_of_a_million_elements_is_refused() -> None:
    with pytest.raises(ParseError, match="elements"):
        parse_xml(b"<r>" + b"<i/>" * 1_000_000 + b"</r>")


def test_error_for_an_ebcdic_document_is_one_line() -> None:
    raw = '<?xml version="1.0" encoding="IBM500"?><r/>'.encode("cp500")
    with pytest.raises(ParseError) as caught:
        parse_xml(raw)
    assert "\n" not in str(caught.value), repr(str(caught.value))


# ============================================================================ XML, through a running gateway


HOSTILE_XML = {
    "xxe-file.xml": (b'<?xml version="1.0"?>\n<!DOCTYPE PurchaseOrder [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                     b'<PurchaseOrder xmlns="urn:example:acme:order:1"><Header><OrderNumber>&x;</OrderNumber>'
                     b"</Header></PurchaseOrder>", REFUSED_DTD),
    "xxe-http.xml": (b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>', REFUSED_DTD),
    "billion-laughs.xml": (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">'
                           + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10))
                           + b"]><lolz>&lol9;</lolz>", REFUSED_DTD),
    "quadratic.xml": (b'<!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><r>' + b"&a;" * 20_000 + b"</r>",
                      REFUSED_DTD),
    "deep.xml": (b"<PurchaseOrder>" + b"<a>" * 100 + b"</a>" * 100 + b"</PurchaseOrder>",
                 "elements nested deeper than 64 levels"),
    "huge-text.xml": (b"<PurchaseOrder>" + b"x" * 11_000_000 + b"</PurchaseOrder>", "Text node too long"),
}


@pytest.fixture
def gateway(tmp_path, target) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(make_deployment(tmp_path / "gw", target.url))
    yield gw
    gw.stop()


@pytest.mark.slow
def test_hostile_xml_files_end_failed_with_the_refusal_and_the_gateway_keeps_working(gateway, target) -> None:
    gw = gateway.start()
    inbox = gw.home / "var" / "inbox" / "ACME"
    for name, (data, _) in HOSTILE_XML.items():
        drop(inbox, name, data)
    messages = wait_for(lambda: (lambda ms: ms if len(ms) == len(HOSTILE_XML) and all(m["status"] != "received" for m in ms)
                                 else None)(gw.cli_json("log", "list")), 60, "every hostile file to settle")
    by_file = {m["filename"]: m for m in messages}
    for name, (_, phrase) in HOSTILE_XML.items():
        assert by_file[name]["status"] == "failed", by_file[name]
        assert name in by_file[name]["error"] and phrase in by_file[name]["error"], by_file[name]["error"]
        assert "\n" not in by_file[name]["error"]
    assert not any(PASSWD_LINE.decode() in m["error"] for m in messages)
    assert target.received == [] and gw.proc.poll() is None, "the gateway must survive hostile XML"
    # Still working afterwards: a real XML order and an EDIFACT order are delivered.
    drop(inbox, "good.xml", (REPO / "mappings" / "golden" / "xml-acme-order" / "full.input.xml").read_bytes())
    drop(inbox, "good.edi", edifact_order("PO-AFTER-ATTACK"))
    wait_for(lambda: len(target.received) == 2, 30, "both good documents")
    numbers = sorted(r["document"]["document"]["number"] for r in target.received)
    assert numbers == ["ACME-PO-4711", "PO-AFTER-ATTACK"]
    assert PASSWD_LINE.decode() not in gw.log()


# ============================================================================ AS2, against the real receiver


EDI = b"UNB+UNOA:2+ACME+GATEWAY+240101:1200+1'\r\nUNH+1+ORDERS:D:96A:UN'\r\nBGM+220+PO1'\r\nUNZ+1+1'\r\n"
REQUEST_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def keys():
    return pki()


@pytest.fixture
def lite_store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'attacks.sqlite'}", tmp_path / "blobs") as store:
        yield store


@pytest.fixture
async def gw(tmp_path, keys, lite_store):
    deployment = write_deployment(tmp_path / "home", keys, request_timeout=REQUEST_TIMEOUT)
    async with serving(deployment, lite_store) as endpoint:
        yield endpoint


def _impostor_certificate(keys) -> x509.Certificate:
    """The stranger's key in a certificate copying the partner's subject, issuer and serial number."""
    genuine = keys.partner.certificate
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(genuine.subject).issuer_name(genuine.issuer)
            .serial_number(genuine.serial_number).public_key(keys.stranger.key.public_key())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .sign(keys.stranger.key, hashes.SHA256()))


FORGERIES = {
    # The partner's genuine certificate attached, the signature made with another key.
    "genuine-certificate-wrong-key": lambda k: Identity(key=k.stranger.key, certificate=k.partner.certificate),
    # A certificate that names the partner (issuer + serial, the CMS signer id) but holds the stranger's key.
    "impostor-certificate": lambda k: Identity(key=k.stranger.key, certificate=_impostor_certificate(k)),
}


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_signature_gets_a_negative_mdn_and_is_not_processed(gw: Endpoint, keys, forgery) -> None:
    out = build(EDI, sign=FORGERIES[forgery](keys), encrypt=[keys.ours.certificate], filename="po.edi")
    reply = await gw.post(out.body, out.content_type)
    assert reply.status == 200
    mdn = reply.mdn(keys)
    assert (mdn.disposition, mdn.modifier, mdn.mic) == ("processed", "error: authentication-failed", None)
    receipt = gw.store.receipt_for("sent", "ACME", reply.message_id)
    stored = gw.store.message(receipt.message_id)
    assert stored.status == MessageStatus.FAILED and gw.received == []


async def test_replayed_body_under_a_new_message_id_is_a_visible_duplicate_processed_once(gw: Endpoint, keys) -> None:
    # An attacker (or a confused partner system) resends captured bytes with a fresh Message-ID.
    out = build(EDI, sign=keys.partner, encrypt=[keys.ours.certificate], filename="po.edi")
    first = await gw.post(out.body, out.content_type)
    replay = await gw.post(out.body, out.content_type)
    assert first.message_id != replay.message_id
    assert first.mdn(keys).ok and replay.status == 200
    original = gw.store.message(gw.store.receipt_for("sent", "ACME", first.message_id).message_id)
    again = gw.store.message(gw.store.receipt_for("sent", "ACME", replay.message_id).message_id)
    assert again.id != original.id and again.duplicate_of == original.id and again.status == "duplicate"
    assert gw.received == [original.id], "the replayed bytes must not be processed a second time"


async def _status_of(port: int, request: bytes) -> int | None:
    """Send ``request`` and read the status line; None when the server closed without an answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            line = await reader.readline()
        return int(line.split()[1]) if line else None
    except ConnectionResetError:
        return None
    finally:
        writer.close()


def _with_headers(extra: bytes, *, path: bytes = b"/as2") -> bytes:
    head = request_head(4, message_id=f"<{uuid.uuid4().hex}@ACME-AS2>").replace(b"POST /as2 ", b"POST " + path + b" ")
    return head.replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n\r\n") + b"abcd"


OVERSIZED = {
    "one 64 KB header": _with_headers(b"X-Big: " + b"a" * 65_536),
    "a 64 KB Message-ID": request_head(4, message_id="<" + "a" * 65_536 + "@ACME-AS2>") + b"abcd",
    "1000 headers": _with_headers(b"\r\n".join(b"X-H%d: v" % i for i in range(1000))),
    "a 64 KB request line": _with_headers(b"", path=b"/as2?" + b"q" * 65_536),
    "a 1 MB header block": _with_headers(b"\r\n".join(b"X-H%d: " % i + b"b" * 8000 for i in range(128))),
}


@pytest.mark.parametrize("case", OVERSIZED)
async def test_oversized_headers_get_a_4xx_and_the_server_keeps_serving(gw: Endpoint, keys, case) -> None:
    status = await _status_of(gw.server.port, OVERSIZED[case])
    assert status is not None and 400 <= status < 500, status
    assert gw.store.search_messages() == []
    out = build(EDI, sign=keys.partner, encrypt=[keys.ours.certificate])
    assert (await gw.post(out.body, out.content_type)).mdn(keys).ok


async def _trickle(port: int, data: Iterator[bytes], gap: float, give_up: float) -> tuple[float, bytes]:
    """Send ``data`` one byte per ``gap`` s; returns (seconds until the server closed or answered, its answer).

    Gives up (returns ``give_up`` and no answer) if the server neither answers nor closes in time.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    answer = b""
    try:
        for byte in data:
            if time.monotonic() - started > give_up:
                return give_up, answer
            try:
                writer.write(byte)
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(65_536), gap)
            except TimeoutError:
                continue                          # nothing yet: the server is still waiting for us
            except (ConnectionResetError, BrokenPipeError):
                break
            break                                 # an answer, or EOF (b""): the server is done with us
        return time.monotonic() - started, answer
    finally:
        writer.close()


def _slow_headers() -> Iterator[bytes]:
    """A request head that never ends: one more harmless header, forever."""
    yield from (bytes([b]) for b in request_head(10).removesuffix(b"\r\n"))
    n = 0
    while True:
        n += 1
        yield from (bytes([b]) for b in b"X-Pad-%d: x\r\n" % (n % 100))


def _slow_body() -> Iterator[bytes]:
    """Complete headers at once, then a body that trickles and never reaches its Content-Length."""
    yield request_head(100_000)
    while True:
        yield b"0"


async def _normal_exchange_while(gw: Endpoint, keys, slow: list[asyncio.Task]) -> float:
    """Seconds one ordinary signed+encrypted message takes while the slow clients are connected."""
    await asyncio.sleep(0.5)   # the slow clients are in the middle of their requests
    out = build(EDI, sign=keys.partner, encrypt=[keys.ours.certificate])
    started = time.monotonic()
    reply = await gw.post(out.body, out.content_type)
    took = time.monotonic() - started
    assert reply.mdn(keys).ok and not all(t.done() for t in slow)
    return took


async def test_slowloris_body_is_cut_at_request_timeout_and_others_are_served(gw: Endpoint, keys) -> None:
    slow = [asyncio.create_task(_trickle(gw.server.port, _slow_body(), gap=0.1, give_up=REQUEST_TIMEOUT + 5))
            for _ in range(20)]
    took = await _normal_exchange_while(gw, keys, slow)
    results = await asyncio.gather(*slow)
    assert took < 2, f"an ordinary message took {took:.2f} s while 20 slow bodies were trickling"
    for seconds, answer in results:
        assert seconds < REQUEST_TIMEOUT + 1.5, f"a slow body was held {seconds:.1f} s"
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert len(gw.store.search_messages()) == 1, "only the ordinary message is stored"
    assert list(gw.tmp_dir.iterdir()) == [], "the slow bodies' temp files are gone"


async def test_slowloris_headers_are_cut_at_request_timeout_and_others_are_served(gw: Endpoint, keys) -> None:
    slow = [asyncio.create_task(_trickle(gw.server.port, _slow_headers(), gap=0.1, give_up=REQUEST_TIMEOUT + 2))
            for _ in range(20)]
    took = await _normal_exchange_while(gw, keys, slow)
    results = await asyncio.gather(*slow)
    assert took < 2, f"an ordinary message took {took:.2f} s while 20 slow header blocks were trickling"
    held = [seconds for seconds, _ in results]
    assert max(held) < REQUEST_TIMEOUT + 1.5, f"slow header blocks were held up to {max(held):.1f} s"

