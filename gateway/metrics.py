"""Monitoring edge: Prometheus metrics (GET /metrics), liveness (GET /health) and readiness (GET /ready).

Counters and histograms are counted where things happen (the pipeline, the delivery worker);
gauges that describe the state of the deployment (queue depth, certificate days left) are read
from the store and the configuration when Prometheus scrapes, so every node reports the same
truth. Each :class:`Metrics` has its own registry: several gateways in one process (tests)
never mix their numbers.

With ``[server] processes > 1`` the processes share the HTTP port, so a scrape lands on any one
of them: the primary points ``PROMETHEUS_MULTIPROC_DIR`` at ``[monitoring] multiprocess_dir``
(emptied at start) before the secondaries start, every process writes its counters there
(prometheus-client's multiprocess mode, memory-mapped files), and whichever process answers
the scrape adds them all up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import structlog
from aiohttp import web
from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from .as2 import expires_in_days
from .certstore import subject as certificate_subject
from .config_monitor import MonitoringSettings
from .errors import GatewayError
from .retry import BreakerState

log = structlog.get_logger("gateway.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BREAKER_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
# Receipt to delivery spans milliseconds (a healthy target) to hours (a target that was down).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
UNKNOWN = "unknown"   # the label value for a partner or format not known (yet)


def use_multiprocess_dir(directory: Path, *, fresh: bool) -> None:
    """Make this process keep its metrics in ``directory``, shared with the deployment's other processes.

    The primary calls it with ``fresh`` (the files of an earlier run are removed) before it
    creates any metric and before the secondaries start; they inherit the variable.
    prometheus-client picks its value class from the variable when it is imported, which
    here may have happened already: the class is picked again.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if fresh:
        for stale in directory.glob("*.db"):
            stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()


def process_exited(pid: int) -> None:
    """A secondary died (it is started again under a new pid): drop its breaker gauges, keep its counts."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        mark_process_dead(pid, directory)


def certificates_in_use(deployment: Any) -> list[tuple[str, x509.Certificate]]:
    """(owner, certificate) for our AS2 key pairs ("ours") and each enabled partner's AS2 certificates."""
    found = [("ours", identity.certificate) for identity in deployment.settings.as2.identities]
    for partner in deployment.partners.values():
        if partner.enabled and partner.as2 is not None:
            found.extend((partner.id, cert) for cert in partner.as2.certificates)
    return found


class StateCollector:
    """Gauges read at scrape time: queue depth from the store, certificate days left from the configuration.

    A store that does not answer does not fail the scrape: ``gateway_store_up`` says 0 and the
    queue gauges are left out (an absent series, rather than a misleading zero).
    """

    def __init__(self, store: Any, deployment: Any) -> None:
        self.store = store
        self.deployment = deployment

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("gateway_store_up", "1 when the store answered the scrape's queries, else 0")
        depth = GaugeMetricFamily("gateway_queue_depth", "Deliveries not delivered yet, by partner, target and status "
                                  "(queued, retrying, dead)", labels=["partner", "target", "status"])
        try:
            counts = self.store.queue_depth()
        except GatewayError as exc:
            log.warning("metrics: queue depth not read", error=str(exc))
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            for (partner, target, status), count in sorted(counts.items()):
                depth.add_metric([partner, target, status.value], count)
        yield up
        yield depth
        days = GaugeMetricFamily("gateway_certificate_days_left", "Days until a certificate in use expires "
                                 "(negative: expired), by owner (ours or the partner) and subject",
                                 labels=["owner", "subject"])
        now = dt.datetime.now(dt.UTC)
        for owner, cert in certificates_in_use(self.deployment):
            days.add_metric([owner, certificate_subject(cert)], round(expires_in_days(cert, now), 3))
        yield days


class Metrics:
    """The gateway's Prometheus metrics: counted by the pipeline and the worker, served at GET /metrics."""

    def __init__(self, settings: MonitoringSettings, store: Any, deployment: Any,
                 breakers: Callable[[], dict[str, Any]] = dict) -> None:
        self.settings = settings
        self.multiprocess = MULTIPROC_ENV in os.environ
        self.registry = CollectorRegistry(auto_describe=True)
        self._state = StateCollector(store, deployment)
        self._breakers = breakers    # this process's circuit breakers by target, refreshed at each scrape
        r = self.registry
        self.received = Counter("gateway_messages_received", "Messages received, by partner and channel",
                                ["partner", "channel"], registry=r)
        self.processed = Counter("gateway_messages_processed", "Messages through the pipeline, by partner, format "
                                 "and outcome (processed, failed, duplicate)", ["partner", "format", "outcome"],
                                 registry=r)
        self.documents = Counter("gateway_documents", "Documents produced, by partner and document type",
                                 ["partner", "document_type"], registry=r)
        self.deliveries = Counter("gateway_deliveries", "Delivery attempts settled, by target, partner, document "
                                  "type and outcome (delivered, retry, dead)",
                                  ["target", "partner", "document_type", "outcome"], registry=r)
        self.delivery_seconds = Histogram("gateway_delivery_duration_seconds", "Time of one delivery attempt, "
                                          "by target", ["target"], buckets=DURATION_BUCKETS, registry=r)
        self.latency_seconds = Histogram("gateway_receipt_to_delivery_seconds", "From receiving a message to "
                                         "delivering its document, by partner and document type",
                                         ["partner", "document_type"], buckets=LATENCY_BUCKETS, registry=r)
        # Per process; across processes the worst state wins (closed 0, half-open 1, open 2).
        self.breaker_state = Gauge("gateway_breaker_state", "Circuit breaker of a target: 0 closed, 1 half-open, "
                                   "2 open", ["target"], multiprocess_mode="livemax", registry=r)
        if not self.multiprocess:   # in multiprocess mode the scrape registry holds it (see exposition)
            r.register(self._state)

    # -- counting ------------------------------------------------------------------------------

    def message_received(self, partner: str | None, channel: str) -> None:
        """A message was received (stored) on ``channel``."""
        self.received.labels(partner or UNKNOWN, channel).inc()

    def duplicate_received(self, partner: str | None, channel: str) -> None:
        """The same bytes came again: received, and not processed again (outcome duplicate)."""
        self.message_received(partner, channel)
        self.processed.labels(partner or UNKNOWN, UNKNOWN, "duplicate").inc()

    def message_processed(self, partner: str | None, format: str | None, outcome: str,
                          document_types: Iterable[str] = ()) -> None:
        """The pipeline finished a message: ``outcome`` processed, failed or duplicate, with its documents."""
        partner = partner or UNKNOWN
        self.processed.labels(partner, format or UNKNOWN, outcome).inc()
        for document_type in document_types:
            self.documents.labels(partner, document_type).inc()

    def delivery_settled(self, delivery: Any, outcome: str, duration_ms: float, now: float,
                         breaker: BreakerState | None = None) -> None:
        """A delivery attempt ended: ``outcome`` delivered, retry or dead; a delivered one also times its latency."""
        self.deliveries.labels(delivery.target, delivery.partner, delivery.document_type, outcome).inc()
        self.delivery_seconds.labels(delivery.target).observe(duration_ms / 1000)
        if outcome == "delivered":
            # The message's receipt time where the claim carries it; else the delivery's creation,
            # which the pipeline sets milliseconds after receipt.
            started = delivery.received_at or delivery.created_at
            self.latency_seconds.labels(delivery.partner, delivery.document_type).observe(max(0.0, now - started))
        if breaker is not None:
            self.breaker_changed(delivery.target, breaker)

    def breaker_changed(self, target: str, state: BreakerState) -> None:
        """A target's circuit breaker is now in ``state``."""
        self.breaker_state.labels(target).set(BREAKER_VALUES[state])

    # -- serving -------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text exposition of every metric (blocking: reads the store; run off the loop)."""
        for target, breaker in self._breakers().items():
            self.breaker_changed(target, breaker.state)
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, os.environ[MULTIPROC_ENV])
        registry.register(self._state)
        return generate_latest(registry)

    def routes(self) -> list[web.RouteDef]:
        """GET /metrics (unless ``[monitoring] metrics = false``); /health and /ready come from :class:`Readiness`."""
        return [web.get("/metrics", self._serve)] if self.settings.metrics else []

    async def _serve(self, request: web.Request) -> web.Response:
        if not self.settings.may_read_metrics(request.remote):
            return web.Response(status=403, text="/metrics is not open to your address ([monitoring] metrics_allow)\n")
        body = await asyncio.to_thread(self.exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


# What /ready checks besides the store: a name and a function saying what is wrong (None: fine).
Check = Callable[[], "str | None"]


class Readiness:
    """GET /health (the loop answers) and GET /ready (the store answers and every listener is up).

    /ready answers 503 with ``{"status": "not ready", "problems": {name: what}}``; the store's
    own error text is logged, not returned (the routes need no login).
    """

    def __init__(self, store: Any, checks: dict[str, Check], *, timeout: float = 5.0) -> None:
        self.store = store
        self.checks = checks
        self.timeout = timeout

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/health", self._health), web.get("/ready", self._ready)]

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def problems(self) -> dict[str, str]:
        """What is not ready, by component (empty: ready)."""
        problems: dict[str, str] = {}
        started = time.monotonic()
        try:
            # A read that touches the messages table: a missing or locked table fails it like a lost server.
            await asyncio.wait_for(asyncio.to_thread(self.store.search_messages, limit=1), self.timeout)
        except (GatewayError, asyncio.TimeoutError) as exc:
            log.warning("not ready: the store does not answer", error=str(exc) or "timeout",
                        ms=round((time.monotonic() - started) * 1000, 1))
            problems["store"] = "unreachable"
        for name, check in self.checks.items():
            problem = check()
            if problem:
                problems[name] = problem
        return problems

    async def _ready(self, request: web.Request) -> web.Response:
        problems = await self.problems()
        if problems:
            return web.json_response({"status": "not ready", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})
