"""Status callbacks to the system that submitted a document, and Idempotency-Key reuse with another request.

A real gateway in-process (SQLite, 127.0.0.1) with the document API; callbacks go through a
real REST target (harness.RecordingTarget), signed like every delivery.
"""

from __future__ import annotations

import asyncio
import copy
import time

import pytest

from gateway.app import Gateway, open_store, run_pipeline
from gateway.callbacks import settled
from gateway.config import check_deployment, load_deployment
from gateway.model import Channel, Received
from harness import SECRET, verify_signature
from test_api import INVOICE, OPENAPI, OTHER_TOKEN, TOKEN, _validator, auth, call, deployment_in, until_status


def ack_997(control: str = "900") -> bytes:
    """ACME's 997 accepting our first invoice (interchange 1, group 1, set 0001)."""
    return ("ISA*00*          *00*          *ZZ*ACMEUS         *ZZ*MYCOMPANY      *261127*1000*U*00401*"
            f"000000{control}*0*P*>~GS*FA*ACMEUS*MYCOMPANY*20261127*1000*{control}*X*004010~ST*997*0001~AK1*IN*1~"
            f"AK2*810*0001~AK5*A~AK9*A*1*1*1~SE*6*0001~GE*1*{control}~IEA*1*000000{control}~").encode()


@pytest.fixture
async def gw(tmp_path, monkeypatch, target):
    monkeypatch.setenv("H10_ERP_TOKEN", TOKEN)
    monkeypatch.setenv("H10_BI_TOKEN", OTHER_TOKEN)
    monkeypatch.setenv("GW_HARNESS_SECRET", SECRET)
    deployment_in(tmp_path)
    config = tmp_path / "gateway.toml"
    config.write_text(config.read_text().replace(
        '[api]\n', '[api]\ncallbacks = { "env:H10_ERP_TOKEN" = "erp-status" }\ncallback_seconds = 0.1\n')
        + f'[targets.erp-status]\ntype = "rest"\nurl = "{target.url}"\nsecret = "env:GW_HARNESS_SECRET"\n'
        '[delivery]\npoll_seconds = 0.05\n')
    deployment = load_deployment(tmp_path)
    assert not deployment.problems and deployment.settings.api.callbacks == {"env:H10_ERP_TOKEN": "erp-status"}
    store = await asyncio.to_thread(open_store, deployment)
    gateway = Gateway(deployment, store)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()
        store.close()


async def feed(gw: Gateway, raw: bytes, name: str) -> None:
    """A partner's file, stored and processed as if it had arrived in ACME's inbox."""
    message = gw.store.receive(Received(raw=raw, channel=Channel.INBOX, partner="ACME", filename=name,
                                        source_ref=f"test:{name}")).message
    await asyncio.to_thread(run_pipeline, gw.store, gw.deployment, message.id)


async def eventually(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_callback_reports_the_acknowledged_status_once_signed_and_keyed(gw, target):
    _, queued, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                              {"partner": "ACME", "type": "invoice", "document": INVOICE}, auth())
    await until_status(gw, queued["id"], "sent")
    await asyncio.sleep(0.6)   # delivered, but ACME's 997 is awaited: not settled, nothing reported
    assert target.received == []
    await feed(gw, ack_997(), "997.x12")
    await eventually(lambda: target.received, 10, "the status callback")
    await asyncio.sleep(0.6)   # final: never reported again
    [callback] = target.received
    assert verify_signature(callback)
    assert callback["headers"]["Idempotency-Key"] == f"callback:{queued['id']}:acknowledged:accepted"
    status = callback["document"]
    assert not list(_validator(OPENAPI["webhooks"]["documentStatus"]["post"]["requestBody"]["content"]
                               ["application/json"]["schema"]).iter_errors(status))
    assert status["event"] == "document.status" and status["id"] == queued["id"] and status["type"] == "invoice"
    assert status["status"] == "acknowledged" and status["acknowledgment"]["status"] == "accepted"
    assert status["delivery"]["status"] == "delivered" and status["delivery"]["target"] == "outbox:ACME"
    # The GET answer still describes the interchange's delivery, not the callback's.
    _, after, _ = await call(gw.http.url, "GET", f"/api/v1/documents/{queued['id']}", headers=auth())
    assert after["delivery"]["target"] == "outbox:ACME"
    # The operator sees the callback in the message's timeline.
    steps = [(e.step, e.outcome) for e in gw.store.timeline(queued["id"])]
    assert ("callback", "queued") in steps


async def test_overdue_acknowledgment_is_reported_then_the_late_acknowledgment(gw, target):
    _, queued, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                              {"partner": "ACME", "type": "invoice", "document": INVOICE}, auth())
    await until_status(gw, queued["id"], "sent")
    # Two hours later (the sweep's check, with the clock moved on): ACME's 997 is overdue.
    overdue = gw.store.overdue_acks(now=time.time() + 7200)
    assert sorted(row.level for row in overdue) == ["interchange", "message"]
    await eventually(lambda: len(target.received) == 1, 10, "the overdue callback")
    assert target.received[0]["document"]["acknowledgment"]["status"] == "overdue"
    await asyncio.sleep(0.5)
    assert len(target.received) == 1   # reported once while it stays overdue
    await feed(gw, ack_997(), "997.x12")
    await eventually(lambda: len(target.received) == 2, 10, "the late acknowledgment's callback")
    keys = [r["headers"]["Idempotency-Key"] for r in target.received]
    assert keys == [f"callback:{queued['id']}:sent:overdue", f"callback:{queued['id']}:acknowledged:accepted"]


async def test_a_caller_without_a_callback_target_gets_none(gw, target):
    _, queued, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                              {"partner": "ACME", "type": "invoice", "document": INVOICE}, auth(OTHER_TOKEN))
    await until_status(gw, queued["id"], "sent")
    await feed(gw, ack_997(), "997.x12")
    await until_status(gw, queued["id"], "acknowledged")
    await asyncio.sleep(0.6)
    assert target.received == []
    assert gw.store.submission(queued["id"]).final is True


async def test_same_idempotency_key_with_another_request_is_refused(gw):
    headers = {**auth(), "Idempotency-Key": "inv-7-once"}
    status, first, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                                  {"partner": "ACME", "type": "invoice", "document": INVOICE}, headers)
    assert status == 201
    status, again, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                                  {"partner": "ACME", "type": "invoice", "document": INVOICE}, headers)
    assert status == 200 and again["id"] == first["id"]
    changed = copy.deepcopy(INVOICE)
    changed["totals"]["gross"] = "26.00"
    status, refused, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                                    {"partner": "ACME", "type": "invoice", "document": changed}, headers)
    assert status == 422
    assert refused["errors"] == [f"Idempotency-Key: 'inv-7-once' was used for another request (message "
                                 f"{first['id']}); a repeat must send the same partner, type and documents"]


def test_settled_statuses():
    def status(state: str, ack: str | None) -> dict:
        return {"status": state, "acknowledgment": {"status": ack} if ack else None}

    assert settled(status("queued", None)) is None
    assert settled(status("sent", "pending")) is None
    assert settled(status("mdn", None)) == ("mdn", True)
    assert settled(status("sent", "overdue")) == ("sent:overdue", False)
    assert settled(status("dead", "pending")) == ("dead:pending", True)
    assert settled(status("acknowledged", "rejected")) == ("acknowledged:rejected", True)


def test_callback_settings_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("H10_ERP_TOKEN", TOKEN)
    monkeypatch.setenv("H10_BI_TOKEN", OTHER_TOKEN)
    deployment_in(tmp_path)
    config = tmp_path / "gateway.toml"
    config.write_text(config.read_text().replace(
        '[api]\n', '[api]\ncallbacks = { "env:NOT_A_TOKEN" = "erp", "*" = "nowhere" }\n'))
    problems = [str(p) for p in check_deployment(tmp_path)]
    assert 'gateway.toml: api.callbacks.env:NOT_A_TOKEN: names no token of api.tokens (use the reference as ' \
           'written, or "*")' in problems
    assert "gateway.toml: api.callbacks.*: no target 'nowhere' in gateway.toml [targets]" in problems
