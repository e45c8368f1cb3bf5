"""Connectors against real aiohttp servers on 127.0.0.1 and real folders."""

import asyncio
import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from aiohttp import web

from gateway.config import BreakerSettings, Target, resolve_secret
from gateway.errors import PermanentDeliveryError, RetryableDeliveryError
from gateway.model import DeliveryJob
from gateway.outbound.file import FileConnector
from gateway.outbound.rest import RestConnector, webhook_signature
from gateway.retry import RetryPolicy

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def target(kind, **options):
    return Target(name="t", type=kind, options=options, retry=RetryPolicy(), breaker=BreakerSettings())


def job(body=b'{"type":"order"}', key="a" * 32, attempt=1):
    return DeliveryJob(delivery_id="dlv_1", target="t", partner="ACME", document_id="doc_1",
                       document_type="order", idempotency_key=key, body=body, attempt=attempt)


@pytest.fixture
async def server():
    """A real HTTP target whose answers the test scripts; records every request."""
    state = {"answers": [], "requests": []}

    async def handle(request):
        body = await request.read()
        state["requests"].append((dict(request.headers), body))
        answer = state["answers"].pop(0) if state["answers"] else (200, "ok")
        if answer == "sleep":
            await asyncio.sleep(5)
            return web.Response(text="late")
        status, text = answer[:2]
        headers = answer[2] if len(answer) > 2 else {}
        return web.Response(status=status, text=text, headers=headers)

    app = web.Application()
    app.router.add_post("/in", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    state["url"] = f"http://127.0.0.1:{port}/in"
    yield state
    await runner.cleanup()


async def test_rest_posts_json_with_idempotency_key_and_verifiable_signature(server):
    conn = RestConnector(target("rest", url=server["url"], secret=SECRET), Path("."))
    try:
        assert await conn.send(job()) == 200
    finally:
        await conn.close()
    headers, body = server["requests"][0]
    assert body == b'{"type":"order"}'
    assert headers["Idempotency-Key"] == "a" * 32
    assert headers["Content-Type"] == "application/json"
    # Verify as a Standard Webhooks consumer would, independently of our helper.
    key = base64.b64decode(SECRET[6:])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert headers["webhook-id"] == "a" * 32


def test_signature_changes_with_body():
    assert webhook_signature(b"k", "id", 1, b"a") != webhook_signature(b"k", "id", 1, b"b")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_rest_transient_statuses_are_retryable(server, status):
    server["answers"].append((status, "busy", {"Retry-After": "7"}))
    conn = RestConnector(target("rest", url=server["url"]), Path("."))
    try:
        with pytest.raises(RetryableDeliveryError) as err:
            await conn.send(job())
    finally:
        await conn.close()
    assert err.value.status == status and f"HTTP {status}" in str(err.value)
    assert err.value.retry_after == 7.0


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
async def test_rest_client_errors_are_permanent(server, status):
    server["answers"].append((status, "bad document"))
    conn = RestConnector(target("rest", url=server["url"]), Path("."))
    try:
        with pytest.raises(PermanentDeliveryError) as err:
            await conn.send(job())
    finally:
        await conn.close()
    assert err.value.status == status and "bad document" in str(err.value)


async def test_rest_timeout_is_retryable(server):
    server["answers"].append("sleep")
    conn = RestConnector(target("rest", url=server["url"], timeout=0.3), Path("."))
    try:
        with pytest.raises(RetryableDeliveryError, match="no answer"):
            await conn.send(job())
    finally:
        await conn.close()


async def test_rest_connection_refused_is_retryable():
    conn = RestConnector(target("rest", url="http://127.0.0.1:9/in", timeout=2), Path("."))
    try:
        with pytest.raises(RetryableDeliveryError, match="cannot reach"):
            await conn.send(job())
    finally:
        await conn.close()


def test_rest_options_are_checked():
    problems = dict(RestConnector.check_options(
        {"url": "ftp://x", "timeout": -1, "secret": "env:GW_TEST_UNSET_SECRET", "bogus": 1},
        Path("."), resolve_secret))
    assert set(problems) == {"url", "timeout", "secret", "bogus"}
    assert "GW_TEST_UNSET_SECRET is not set" in problems["secret"]


async def test_file_connector_writes_atomically_once_per_key(tmp_path):
    conn = FileConnector(target("file", path=str(tmp_path / "out")), tmp_path)
    await conn.send(job(body=b'{"n":1}'))
    await conn.send(job(body=b'{"n":1}', attempt=2))   # a retry overwrites, never duplicates
    files = list((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["order-" + "a" * 32 + ".json"]
    assert json.loads(files[0].read_bytes()) == {"n": 1}


async def test_file_connector_refuses_unsafe_keys(tmp_path):
    conn = FileConnector(target("file", path=str(tmp_path)), tmp_path)
    with pytest.raises(PermanentDeliveryError):
        await conn.send(job(key="../../etc/passwd"))


async def test_outbox_connector_places_each_file_once_and_never_overwrites_another(tmp_path):
    from types import SimpleNamespace

    from gateway.outbound.outbox import OutboxConnector

    deployment = SimpleNamespace(settings=SimpleNamespace(sftp=SimpleNamespace(root=tmp_path / "sftp")))
    conn = OutboxConnector(SimpleNamespace(id="ACME"), deployment)
    outbox = tmp_path / "sftp" / "ACME" / "outbox"
    first = DeliveryJob(delivery_id="d1", target="outbox:ACME", partner="ACME", document_id="out_1",
                        document_type="edi", idempotency_key="k" * 32, body=b"UNB+first'", attempt=1,
                        filename="invoice.edi")
    await conn.send(first)
    await conn.send(first)   # a retry after the write: the same single file
    other = DeliveryJob(delivery_id="d2", target="outbox:ACME", partner="ACME", document_id="out_2",
                        document_type="edi", idempotency_key="m" * 32, body=b"UNB+second'", attempt=1,
                        filename="../../invoice.edi")
    await conn.send(other)   # same plain name, other bytes: kept apart, path parts dropped
    assert sorted(p.name for p in outbox.iterdir()) == ["invoice-" + "m" * 12 + ".edi", "invoice.edi"]
    assert (outbox / "invoice.edi").read_bytes() == b"UNB+first'"
    hostile = DeliveryJob(delivery_id="d3", target="outbox:ACME", partner="ACME", document_id="out_3",
                          document_type="edi", idempotency_key="n" * 32, body=b"x", attempt=1,
                          filename=".hidden")
    await conn.send(hostile)
    assert (outbox / "out_3.edi").read_bytes() == b"x"
