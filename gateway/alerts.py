"""Alert rules: evaluated now and then on the node holding the schedules; open, resolve, notify a webhook.

Each round reads a few statistics from the store, turns them into *findings* (conditions that
hold now) with pure functions, and compares them with the open alerts: a new finding opens an
alert, an open alert without its finding resolves. One (rule, subject) has at most one open
alert, so a condition that lasts is reported once. Opening and resolving are rows in the
``alerts`` table and events in the log, written in one transaction; each change is then POSTed
to the ``[alerts] webhook`` target, signed like every rest delivery, by a task of its own, so
a dead webhook never holds up the rules. A change the webhook did not take (``notified_at``
older than ``updated_at``) is offered again next round, also by another node.

Rules (thresholds in gateway.toml [alerts], see gateway/config_monitor.py):

success-rate  a partner's messages in the window that neither failed nor have a dead delivery,
              under ``success_rate`` percent (with at least ``min_messages`` messages)
latency       a partner's P95 receipt-to-delivery time in the window above ``latency_factor``
              times its P95 over the ``latency_baseline_hours`` before the window
dead-letters  a partner has dead deliveries to a target
certificate   a certificate in use expires within ``certificate_days`` (or has expired)
capacity      deliveries waiting for a target (queued + retrying) above ``capacity``
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import structlog
from cryptography import x509

from .as2 import expires_in_days, fingerprint
from .certstore import subject as certificate_subject
from .config_monitor import CAPACITY, CERTIFICATE, DEAD_LETTERS, LATENCY, SUCCESS_RATE, AlertSettings
from .errors import DeliveryError, GatewayError
from .metrics import certificates_in_use
from .model import DeliveryJob, DeliveryStatus
from .store.alerts import LATENCY_BOUNDS, Alert
from .store.base import iso

log = structlog.get_logger("gateway.alerts")

NOTIFY_BACKOFF = 1.0              # seconds before the 2nd webhook attempt of a round; doubles after
NOTIFY_LOOKBACK = 86400.0         # changes older than this are not offered to the webhook any more
Write = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Finding:
    """A rule's condition that holds now, about one subject (a partner, target, certificate...)."""

    rule: str
    subject: str
    severity: str
    detail: str
    partner: str | None = None


@dataclass(frozen=True)
class Statistics:
    """What the rules look at, read in one round (``Store.alert_statistics`` plus the queue depth).

    ``outcomes``: partner -> (messages, failures) in the window; ``recent`` / ``baseline``:
    partner -> receipt-to-delivery histogram (bucket index -> deliveries, see LATENCY_BOUNDS);
    ``queue``: (partner, target, status) -> deliveries, as ``Store.queue_depth`` counts them.
    """

    outcomes: Mapping[str, tuple[int, int]]
    recent: Mapping[str, Mapping[int, int]]
    baseline: Mapping[str, Mapping[int, int]]
    queue: Mapping[tuple[str, str, DeliveryStatus], int]


# -- the rules: pure functions ---------------------------------------------------------------



def bucket_quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile of a :data:`LATENCY_BOUNDS` histogram, interpolated inside its bucket (None: empty)."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index in sorted(counts):
        n = counts[index]
        if n and seen + n >= rank:
            upper = LATENCY_BOUNDS[min(index, len(LATENCY_BOUNDS) - 1)]
            lower = LATENCY_BOUNDS[index - 1] if 0 < index <= len(LATENCY_BOUNDS) else (0.0 if index == 0 else upper)
            return lower + (upper - lower) * (rank - seen) / n
        seen += n
    return LATENCY_BOUNDS[-1]


def success_rate_findings(outcomes: Mapping[str, tuple[int, int]], settings: AlertSettings,
                          severity: str) -> list[Finding]:
    """Partners whose share of good messages in the window is under ``success_rate`` percent."""
    found = []
    for partner, (total, failures) in sorted(outcomes.items()):
        if total < settings.min_messages:
            continue
        rate = 100.0 * (total - failures) / total
        if rate < settings.success_rate:
            found.append(Finding(SUCCESS_RATE, partner, severity, partner=partner, detail=(
                f"success rate {rate:.1f}% over the last {settings.window_minutes:g} min "
                f"({failures} of {total} messages failed or have a dead delivery; threshold {settings.success_rate:g}%)")))
    return found


def latency_findings(recent: Mapping[str, Mapping[int, int]], baseline: Mapping[str, Mapping[int, int]],
                     settings: AlertSettings, severity: str) -> list[Finding]:
    """Partners whose P95 receipt-to-delivery time in the window is over ``latency_factor`` x their baseline P95."""
    found = []
    for partner in sorted(recent):
        now_counts, usual_counts = recent[partner], baseline.get(partner, {})
        if sum(now_counts.values()) < settings.min_deliveries or sum(usual_counts.values()) < settings.min_deliveries:
            continue   # too little traffic to call anything normal or abnormal
        p95, usual = bucket_quantile(now_counts, 0.95), bucket_quantile(usual_counts, 0.95)
        if p95 is not None and usual is not None and p95 > settings.latency_factor * usual:
            found.append(Finding(LATENCY, partner, severity, partner=partner, detail=(
                f"P95 receipt-to-delivery {_seconds(p95)} over the last {settings.window_minutes:g} min, "
                f"{p95 / usual:.1f}x the {_seconds(usual)} of the {settings.latency_baseline_hours:g} h before")))
    return found


def dead_letter_findings(queue: Mapping[tuple[str, str, DeliveryStatus], int], severity: str) -> list[Finding]:
    """One finding per partner and target with dead deliveries."""
    return [Finding(DEAD_LETTERS, f"{partner}/{target}", severity, partner=partner,
                    detail=f"{count} dead deliver{'y' if count == 1 else 'ies'} of {partner} to {target} "
                           f"(gateway dlq list; gateway dlq retry)")
            for (partner, target, status), count in sorted(queue.items())
            if status is DeliveryStatus.DEAD and count > 0]


def capacity_findings(queue: Mapping[tuple[str, str, DeliveryStatus], int], settings: AlertSettings,
                      severity: str) -> list[Finding]:
    """Targets with more than ``capacity`` deliveries waiting (queued or retrying)."""
    waiting: dict[str, int] = {}
    for (_partner, target, status), count in queue.items():
        if status in (DeliveryStatus.QUEUED, DeliveryStatus.RETRYING):
            waiting[target] = waiting.get(target, 0) + count
    return [Finding(CAPACITY, target, severity,
                    detail=f"{count} deliveries waiting for {target} (capacity {settings.capacity})")
            for target, count in sorted(waiting.items()) if count > settings.capacity]


def certificate_findings(certificates: list[tuple[str, x509.Certificate]], now: dt.datetime,
                         settings: AlertSettings, severity: str) -> list[Finding]:
    """Certificates in use that expire within ``certificate_days`` or have expired."""
    found = []
    for owner, cert in certificates:
        days = expires_in_days(cert, now)
        if days >= settings.certificate_days:
            continue
        date = cert.not_valid_after_utc.date().isoformat()
        when = f"expired on {date}" if days < 0 else f"expires in {math.floor(days)} days ({date})"
        name = certificate_subject(cert)
        subject = f"{owner}: {name} [{fingerprint(cert)[7:30]}]"[:300]
        found.append(Finding(CERTIFICATE, subject, severity, partner=None if owner == "ours" else owner,
                             detail=f"certificate {name} of {owner} {when}"))
    return found


def findings(stats: Statistics, certificates: list[tuple[str, x509.Certificate]], now: float,
             settings: AlertSettings) -> list[Finding]:
    """Every condition that holds now, by the rules ``settings`` leaves active."""
    sev = settings.severity
    found: list[Finding] = []
    if settings.active(SUCCESS_RATE):
        found += success_rate_findings(stats.outcomes, settings, sev[SUCCESS_RATE])
    if settings.active(LATENCY):
        found += latency_findings(stats.recent, stats.baseline, settings, sev[LATENCY])
    if settings.active(DEAD_LETTERS):
        found += dead_letter_findings(stats.queue, sev[DEAD_LETTERS])
    if settings.active(CERTIFICATE):
        found += certificate_findings(certificates, dt.datetime.fromtimestamp(now, dt.UTC), settings, sev[CERTIFICATE])
    if settings.active(CAPACITY):
        found += capacity_findings(stats.queue, settings, sev[CAPACITY])
    return found


def changes(found: list[Finding], open_alerts: Mapping[tuple[str, str], Alert]) -> tuple[list[Finding], list[Alert]]:
    """What to open (findings without an open alert) and what to resolve (open alerts without a finding)."""
    keys = {(f.rule, f.subject) for f in found}
    opening = [f for f in found if (f.rule, f.subject) not in open_alerts]
    resolving = [a for key, a in open_alerts.items() if key not in keys]
    return opening, resolving


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def read_statistics(store: Any, now: float, settings: AlertSettings) -> Statistics:
    """The numbers the rules need, read in one go (blocking)."""
    window = settings.window_minutes * 60
    outcomes, recent, baseline = store.alert_statistics(
        since=now - window, baseline_since=now - window - settings.latency_baseline_hours * 3600, now=now,
        latency=settings.active(LATENCY))
    return Statistics(outcomes=outcomes, recent=recent, baseline=baseline, queue=store.queue_depth())


def _partner_of(alert: Alert) -> str | None:
    if alert.rule in (SUCCESS_RATE, LATENCY):
        return alert.subject
    if alert.rule == DEAD_LETTERS:
        return alert.subject.partition("/")[0]
    if alert.rule == CERTIFICATE:
        owner = alert.subject.partition(":")[0]
        return None if owner == "ours" else owner
    return None


def webhook_body(alert: Alert) -> bytes:
    """The JSON POSTed to the webhook for one change of an alert."""
    return json.dumps({
        "type": "alert", "event": f"alert.{'opened' if alert.state == 'open' else 'resolved'}",
        "id": alert.id, "rule": alert.rule, "subject": alert.subject, "severity": alert.severity,
        "state": alert.state, "detail": alert.detail, "partner": _partner_of(alert),
        "opened_at": iso(alert.opened_at), "resolved_at": iso(alert.resolved_at) if alert.resolved_at else None,
    }, ensure_ascii=False).encode()


# -- the running part -------------------------------------------------------------------------


class AlertRules:
    """Evaluates the rules every ``interval_seconds`` while ``may_run()`` (the schedules lease) and notifies.

    ``webhook`` is the rest connector of the ``[alerts] webhook`` target (its URL, secret,
    authentication and TLS settings); its Standard Webhooks signature uses the target's secret.
    """

    def __init__(self, settings: AlertSettings, store: Any, deployment: Any, write: Write, *,
                 webhook: Any = None, may_run: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.store = store
        self.deployment = deployment
        self.write = write
        self.webhook = webhook
        self.may_run = may_run
        self._task: asyncio.Task | None = None
        self._notifier: asyncio.Task | None = None

    def start(self) -> None:
        """Start evaluating in the background."""
        if self.settings.enabled:
            self._task = asyncio.create_task(self._run(), name="alert-rules")

    async def stop(self) -> None:
        """Stop evaluating and notifying (a change not notified yet is offered again at the next start)."""
        for task in (self._task, self._notifier):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_seconds)
            if not self.may_run():
                continue   # another node of the deployment evaluates
            try:
                await self.evaluate()
            except GatewayError as exc:
                log.warning("alert rules not evaluated", error=str(exc))

    async def evaluate(self, now: float | None = None) -> list[str]:
        """One round: open and resolve alerts, start notifying; returns the ids of the alerts changed."""
        at = time.time() if now is None else now
        stats = await asyncio.to_thread(read_statistics, self.store, at, self.settings)
        current = findings(stats, certificates_in_use(self.deployment), at, self.settings)
        opening, resolving = changes(current, await asyncio.to_thread(self.store.open_alerts))
        changed: list[str] = []
        if opening or resolving:
            changed = await self.write(self.store.record_alerts, opening, [(a, _partner_of(a)) for a in resolving], at)
            for finding in opening:
                log.warning("alert opened", rule=finding.rule, subject=finding.subject, severity=finding.severity,
                            partner=finding.partner, detail=finding.detail)
            for alert in resolving:
                log.info("alert resolved", rule=alert.rule, subject=alert.subject, severity=alert.severity)
        self.notify(at)
        return changed

    def notify(self, now: float | None = None) -> asyncio.Task | None:
        """Offer the changes not notified yet to the webhook, in a task of its own (one at a time)."""
        if self.webhook is None or (self._notifier is not None and not self._notifier.done()):
            return None
        self._notifier = asyncio.create_task(self._notify(time.time() if now is None else now), name="alert-webhook")
        return self._notifier

    async def _notify(self, now: float) -> None:
        sent: set[tuple[str, float]] = set()
        while True:   # again after each pass: changes recorded meanwhile go out now, not a round later
            try:
                found = await asyncio.to_thread(self.store.unnotified_alerts, now - NOTIFY_LOOKBACK)
            except GatewayError as exc:
                log.warning("alerts not notified", error=str(exc))
                return
            pending = [alert for alert in found if (alert.id, alert.updated_at) not in sent]
            if not pending:
                return
            for alert in pending:
                if not await self._post(alert):
                    return   # the webhook is down: the rest waits for the next round, in order
                sent.add((alert.id, alert.updated_at))
                # Never before the change itself: another node's clock may be ahead of ours.
                with contextlib.suppress(GatewayError):   # not recorded: sent again next round, same webhook-id
                    await self.write(self.store.mark_alert_notified, alert.id, max(time.time(), alert.updated_at))

    async def _post(self, alert: Alert) -> bool:
        job = DeliveryJob(delivery_id=alert.id, target=self.settings.webhook, partner=_partner_of(alert) or "",
                          document_id=alert.id, document_type="alert",
                          idempotency_key=f"alert:{alert.id}:{alert.state}", body=webhook_body(alert), attempt=1)
        for attempt in range(1, self.settings.webhook_attempts + 1):
            try:
                await self.webhook.send(dataclasses.replace(job, attempt=attempt))
                return True
            except DeliveryError as exc:
                log.warning("alert webhook failed", alert_id=alert.id, rule=alert.rule, attempt=attempt,
                            error=str(exc), retry=exc.retryable and attempt < self.settings.webhook_attempts)
                if not exc.retryable:   # refused for good (4xx): offering it again would not change that
                    log.error("alert webhook refused the alert; not offered again", alert_id=alert.id)
                    return True
            if attempt < self.settings.webhook_attempts:
                await asyncio.sleep(NOTIFY_BACKOFF * 2 ** (attempt - 1))
        return False
