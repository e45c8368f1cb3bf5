"""Alert rules: the pure rules on numbers, then rounds on scripted store data (SQLite and PostgreSQL).

A round opens an alert per condition once, leaves it alone while the condition holds and
resolves it when it stops; each change is a row, an event, and one signed POST to the
webhook target (a real REST server on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import alerts
from gateway.alerts import AlertRules, Statistics, bucket_quantile, findings
from gateway.config import _Reader, load_deployment
from gateway.config_monitor import AlertSettings, read_alerts
from gateway.model import Channel, DeliveryStatus, Document, Received
from gateway.outbound import CONNECTORS
from gateway.store.alerts import _ALERT_COLUMNS, Alert
from gateway.store.tables import alerts as alerts_table, events
from harness import SECRET, make_deployment, verify_signature

T0 = 1_800_000_000.0
DEAD, QUEUED = DeliveryStatus.DEAD, DeliveryStatus.QUEUED


def histogram(*latencies: float) -> dict[int, int]:
    counts: dict[int, int] = {}
    for latency in latencies:
        index = next((i for i, bound in enumerate(alerts.LATENCY_BOUNDS) if latency <= bound), len(alerts.LATENCY_BOUNDS))
        counts[index] = counts.get(index, 0) + 1
    return counts


def stats(outcomes=None, recent=None, baseline=None, queue=None) -> Statistics:
    return Statistics(outcomes=outcomes or {}, recent=recent or {}, baseline=baseline or {}, queue=queue or {})


def certificate(days: float) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"cert-{days}")])
    start = dt.datetime.fromtimestamp(T0, dt.UTC) - dt.timedelta(days=300)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(dt.datetime.fromtimestamp(T0, dt.UTC) + dt.timedelta(days=days))
            .sign(key, hashes.SHA256()))


# ------------------------------------------------------------------------------ pure rules


def test_success_rate_fires_under_the_threshold_with_enough_messages():
    settings = AlertSettings()
    found = findings(stats(outcomes={"ACME": (20, 2), "BETA": (20, 1), "TINY": (9, 9)}), [], T0, settings)
    assert [(f.rule, f.subject, f.severity, f.partner) for f in found] == [
        ("success-rate", "ACME", "critical", "ACME")]          # 90% < 95%; BETA at 95% is fine; TINY too few
    assert "90.0%" in found[0].detail and "2 of 20" in found[0].detail
    assert not findings(stats(outcomes={"ACME": (20, 2)}), [], T0, AlertSettings(success_rate=90.0))


def test_latency_fires_at_twice_the_usual_p95_only_with_traffic_on_both_sides():
    usual = histogram(*[1.0] * 20)
    settings = AlertSettings()
    slow = findings(stats(recent={"ACME": histogram(*[2.6] * 20)}, baseline={"ACME": usual}), [], T0, settings)
    assert [(f.rule, f.subject, f.severity) for f in slow] == [("latency", "ACME", "high")]
    assert not findings(stats(recent={"ACME": histogram(*[1.6] * 20)}, baseline={"ACME": usual}), [], T0, settings)
    assert not findings(stats(recent={"ACME": histogram(*[9.0] * 5)}, baseline={"ACME": usual}), [], T0, settings)
    assert not findings(stats(recent={"ACME": histogram(*[9.0] * 20)}), [], T0, settings)   # no baseline yet


def test_bucket_quantile_lands_in_the_right_bucket():
    counts = histogram(*[0.1] * 95, *[30.0] * 5)
    assert 0.1 / 1.25 < bucket_quantile(counts, 0.95) <= 0.1 * 1.25   # within its bucket: 25% wide
    assert 24 < bucket_quantile(counts, 0.99) <= 30 * 1.25
    assert bucket_quantile({}, 0.95) is None


def test_dead_letters_capacity_and_certificates():
    queue = {("ACME", "erp", DEAD): 2, ("ACME", "erp", QUEUED): 7, ("BETA", "erp", QUEUED): 4,
             ("BETA", "wms", DEAD): 0}
    certs = [("ours", certificate(400)), ("ACME", certificate(12.5)), ("BETA", certificate(-1))]
    found = findings(stats(queue=queue), certs, T0, AlertSettings(capacity=10))
    assert [(f.rule, f.severity, f.partner) for f in found] == [
        ("dead-letters", "medium", "ACME"), ("certificate", "low", "ACME"), ("certificate", "low", "BETA"),
        ("capacity", "low", None)]
    assert found[0].subject == "ACME/erp" and found[-1].subject == "erp" and "11 deliveries" in found[-1].detail
    assert "expires in 12 days" in found[1].detail and "expired on" in found[2].detail
    assert not findings(stats(queue=queue), certs, T0, AlertSettings(capacity=11, disabled=("dead-letters", "certificate")))


def test_settings_are_read_with_problems_named(tmp_path, monkeypatch):
    monkeypatch.setenv("GW_HARNESS_SECRET", SECRET)
    problems: list = []
    deployment = load_deployment(make_deployment(tmp_path, "http://127.0.0.1:9/x"))
    targets = deployment.settings.targets
    settings = read_alerts(_Reader("gateway.toml", problems), {
        "webhook": "erp", "interval_seconds": 30, "success_rate": 99, "severity": {"capacity": "high"},
        "disabled": ["latency"]}, targets)
    assert not problems
    assert (settings.webhook, settings.interval_seconds, settings.success_rate) == ("erp", 30.0, 99.0)
    assert settings.severity["capacity"] == "high" and not settings.active("latency")
    read_alerts(_Reader("gateway.toml", problems), {"webhook": "nope", "success_rate": 120,
                                                     "severity": {"latency": "urgent"}, "disabled": ["x"]}, targets)
    assert sorted(p.key for p in problems) == ["alerts.disabled", "alerts.severity.latency", "alerts.success_rate",
                                               "alerts.webhook"]


# ------------------------------------------------------------------------------ rounds on the store


@pytest.fixture
async def rules_for(store, tmp_path, target, monkeypatch):
    monkeypatch.setenv("GW_HARNESS_SECRET", SECRET)
    monkeypatch.setattr(alerts, "NOTIFY_BACKOFF", 0.01)
    deployment = load_deployment(make_deployment(tmp_path / "home", target.url))
    webhook = CONNECTORS["rest"](deployment.settings.targets["erp"], deployment.home)

    async def write(fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    made = []

    def make(**settings) -> AlertRules:
        rules = AlertRules(AlertSettings(webhook="erp", **settings), store, deployment, write, webhook=webhook)
        made.append(rules)
        return rules
    yield make
    for rules in made:
        await rules.stop()
    await webhook.close()


def message(store, n: int, at: float, targets=("erp",), partner="ACME") -> list[str]:
    """One received and processed message with one order routed to ``targets``; the delivery ids."""
    msg = store.receive(Received(raw=f"order {n} {at}".encode(), channel=Channel.INBOX, partner=partner,
                                 filename=f"{n}.edi"), now=at).message
    key = f"k-{n}-{at}"
    envelope = {"type": "order", "version": 1, "id": f"doc-{key}", "idempotency_key": key, "partner": partner,
                "document": {"number": f"PO-{n}"}}
    document = Document(type="order", partner=partner, idempotency_key=key, envelope=envelope, number=f"PO-{n}",
                        targets=list(targets))
    return store.record_processed(msg.id, format="edifact", standard="ORDERS D96A", interchange=str(n),
                                  documents=[document], now=at + 0.01)


def settle(store, at: float, target="erp", dead: int = 0) -> list[str]:
    """Claim everything due for ``target`` at ``at``: bury the first ``dead`` (a 400), deliver the rest."""
    claimed = store.claim("node", limit=100, lease_seconds=60, now=at,
                          exclude_targets=[t for t in ("erp", "wms") if t != target])
    for n, delivery in enumerate(claimed):
        if n < dead:
            store.bury(delivery.delivery_id, "node", error="HTTP 400", http_status=400, now=at)
        else:
            store.complete(delivery.delivery_id, "node", duration_ms=5, http_status=200, now=at)
    return [delivery.delivery_id for delivery in claimed[:dead]]


def alert_events(store) -> list[tuple[str, str | None, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.outcome, events.c.partner, events.c.detail)
                            .where(events.c.step == "alert").order_by(events.c.id)).all()
    return [tuple(r) for r in rows]


async def test_rounds_open_once_resolve_and_notify_signed(store, rules_for, target):
    now = T0
    # Baseline: deliveries a second after receipt, two hours ago.
    for n in range(12):
        message(store, n, now - 7200)
    settle(store, now - 7199)
    # The last five minutes: ten messages, eight delivered 10 s after receipt, two refused for good.
    for n in range(100, 110):
        message(store, n, now - 300)
    two = settle(store, now - 290, dead=2)
    message(store, 200, now - 200, targets=("wms",))    # waiting for wms, over its capacity of 1
    message(store, 201, now - 200, targets=("wms",))
    rules = rules_for(min_deliveries=5, capacity=1)

    opened = await rules.evaluate(now=now)
    rows = _alerts(store)
    assert {(r.rule, r.subject, r.severity, r.state) for r in rows} == {
        ("success-rate", "ACME", "critical", "open"),   # 2 of the 12 recent messages have a dead delivery
        ("latency", "ACME", "high", "open"),            # ~10 s against ~1 s
        ("dead-letters", "ACME/erp", "medium", "open"),
        ("capacity", "wms", "low", "open")}
    assert len(opened) == 4
    assert await rules.evaluate(now=now + 60) == []     # still true: nothing opens twice
    assert len(_alerts(store)) == 4

    # Things get better: the dead ones are retried and delivered, wms catches up, an hour passes.
    for delivery_id in two:
        store.retry_dead(delivery_id, now=now + 100)
    settle(store, now + 101)
    settle(store, now + 101, target="wms")
    resolved = await rules.evaluate(now=now + 3600)
    assert sorted(resolved) == sorted(opened)
    assert {r.state for r in _alerts(store)} == {"resolved"}
    assert await rules.evaluate(now=now + 3660) == []

    events_seen = alert_events(store)
    assert len(events_seen) == 8 and sum("opened" in d for _, _, d in events_seen) == 4
    assert ("medium", "ACME") in {(o, p) for o, p, d in events_seen if d.startswith("dead-letters ACME/erp: resolved")}

    # The webhook got every change once, signed with the target's secret.
    await rules._notifier                 # the last round's notifier: it took what the busy ones left
    assert len(target.received) == 8
    await rules.notify()                  # nothing left to offer
    assert len(target.received) == 8
    assert all(verify_signature(record) for record in target.received)
    bodies = [record["document"] for record in target.received]
    assert sorted(b["event"] for b in bodies) == ["alert.opened"] * 4 + ["alert.resolved"] * 4
    assert len({record["headers"]["webhook-id"] for record in target.received}) == 8
    assert {b["rule"] for b in bodies} == {"success-rate", "latency", "dead-letters", "capacity"}
    assert all(r.notified_at is not None and r.notified_at >= r.updated_at for r in _alerts(store))


async def test_a_failing_webhook_is_retried_and_never_blocks_the_rules(store, rules_for, target):
    target.mode = 503
    message(store, 1, T0 - 60)
    settle(store, T0 - 50, dead=1)
    rules = rules_for(webhook_attempts=3)
    assert len(await rules.evaluate(now=T0)) == 1     # returns while the webhook is still being tried
    await rules._notifier
    assert [status for _, status, _ in target.attempts] == [503, 503, 503]
    assert _alerts(store)[0].notified_at is None
    target.mode = "ok"
    assert await rules.evaluate(now=T0 + 60) == []     # the next round offers it again
    await rules._notifier
    assert len(target.received) == 1 and verify_signature(target.received[0])
    assert json.loads(target.received[0]["body"])["subject"] == "ACME/erp"
    assert _alerts(store)[0].notified_at is not None


async def test_a_webhook_that_refuses_for_good_is_not_asked_again(store, rules_for, target):
    target.mode = 400
    message(store, 1, T0 - 60)
    settle(store, T0 - 50, dead=1)
    rules = rules_for()
    await rules.evaluate(now=T0)
    await rules._notifier
    await rules.evaluate(now=T0 + 60)
    if rules._notifier is not None:
        await rules._notifier
    assert [status for _, status, _ in target.attempts] == [400]   # once: a 400 is not tried again
    assert _alerts(store)[0].notified_at is not None


def _alerts(store) -> list:
    with store.engine.connect() as conn:
        return [Alert(*row) for row in conn.execute(sa.select(*_ALERT_COLUMNS).order_by(alerts_table.c.id))]
