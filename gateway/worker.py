"""Delivery worker: claim due deliveries, hand them to connectors, then complete, reschedule or bury them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Awaitable, Callable

import structlog

from .config import Target
from .errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from .model import DeliveryJob
from .retry import BreakerState, CircuitBreaker, RateLimit

log = structlog.get_logger("gateway.worker")

# Runs a blocking store method off the event loop: ``await call(store.claim, ...)``.
StoreCall = Callable[..., Awaitable[Any]]


class DeliveryWorker:
    """Keeps up to ``workers`` deliveries in flight, at most ``per_target`` for any one target.

    A target's ``concurrency`` replaces ``per_target`` for it and its ``rate_limit`` paces the
    starts on this node (a token bucket). Fairness: a target that is slow fills only its own
    slots and a target whose breaker is open is not claimed at all, so one failing partner or
    system never starves the others. Claims carry a lease; a delivery whose worker died is claimed again once its lease
    has expired (the store enforces it), which is why every send carries the idempotency key.
    """

    metrics: Any = None   # gateway.metrics.Metrics, set by the app: counts every settled attempt

    def __init__(self, store: Any, call: StoreCall, targets: dict[str, Target], connectors: dict[str, Any], *,
                 owner: str, workers: int, per_target: int, lease_seconds: float, poll_seconds: float) -> None:
        self.store = store
        self.call = call
        self.targets = targets
        self.connectors = connectors
        self.owner = owner
        self.workers = workers
        self.per_target = per_target
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.breakers = {name: CircuitBreaker(t.breaker.failure_threshold, t.breaker.reset_seconds)
                         for name, t in targets.items()}
        self.caps = {name: t.flow.concurrency or per_target for name, t in targets.items()}
        # The furthest ahead a retry is ever scheduled: anything later means the wall clock went back.
        self.max_retry_delay = max((t.retry.max_delay * (1 + t.retry.jitter) for t in targets.values()),
                                   default=600.0)
        self.rates = {name: RateLimit(t.flow.rate) for name, t in targets.items() if t.flow.rate}
        self.in_flight: Counter[str] = Counter()
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task | None = None

    def wake(self) -> None:
        """New deliveries were queued: look for work now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start the claim loop as a background task."""
        self._loop_task = asyncio.create_task(self._run(), name="delivery-worker")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; wait up to ``grace`` seconds for attempts in flight (their leases expire otherwise)."""
        self._stopping = True
        self._wake.set()
        if self._loop_task:
            await self._loop_task
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()

    def _unavailable(self, now: float) -> set[str]:
        """Targets that must not be claimed right now: full, breaker open, or unknown here."""
        blocked = {t for t, n in self.in_flight.items() if n >= self.caps.get(t, self.per_target)}
        clock = time.monotonic()
        blocked.update(name for name, rate in self.rates.items() if rate.available(clock) < 1)
        for name, breaker in self.breakers.items():
            if not breaker.allows(now):
                blocked.add(name)
            elif breaker.state is BreakerState.HALF_OPEN and self.in_flight[name]:
                blocked.add(name)
        return blocked

    async def _run(self) -> None:
        while not self._stopping:
            free = self.workers - len(self._tasks)
            claimed = []
            if free > 0:
                now = time.time()
                try:
                    claimed = await self.call(
                        self.store.claim, self.owner, limit=free, lease_seconds=self.lease_seconds,
                        exclude_targets=self._unavailable(now), per_target=self._allowance(now),
                        max_retry_delay=self.max_retry_delay, now=now)
                except Exception:  # the store may be briefly unavailable; keep the worker alive
                    log.exception("claim failed; will try again")
            for delivery in claimed:
                self._launch(delivery)
            if claimed and len(claimed) == free:
                continue  # more may be due right away
            self._wake.clear()
            clock = time.monotonic()
            # A rate-limited target gets its next token before the next poll: look again then.
            pause = min([self.poll_seconds, *(r.wait(clock) or self.poll_seconds for r in self.rates.values())])
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=pause)
            except asyncio.TimeoutError:
                pass

    def _allowance(self, now: float) -> dict[str, int]:
        """How many more deliveries each target may take in this claim."""
        allowance = {}
        clock = time.monotonic()
        for name, breaker in self.breakers.items():
            room = self.caps.get(name, self.per_target) - self.in_flight[name]
            if name in self.rates:
                room = min(room, self.rates[name].available(clock))
            if breaker.state is BreakerState.HALF_OPEN:
                room = min(room, 1)   # a single trial decides whether the target is back
            allowance[name] = max(0, room)
        return allowance

    def _launch(self, delivery: Any) -> None:
        self.in_flight[delivery.target] += 1
        if delivery.target in self.rates:
            self.rates[delivery.target].take(time.monotonic())
        breaker = self.breakers.get(delivery.target)
        if breaker:
            breaker.started()
        task = asyncio.create_task(self._attempt(delivery), name=f"deliver-{delivery.delivery_id}")
        self._tasks.add(task)

        def done(t: asyncio.Task) -> None:
            self._tasks.discard(t)
            self.in_flight[delivery.target] -= 1
            self._wake.set()   # a slot is free

        task.add_done_callback(done)

    async def _attempt(self, d: Any) -> None:
        # This task's log lines (the connector's and its libraries' too) name the delivery.
        structlog.contextvars.bind_contextvars(partner=d.partner, message_id=d.message_id, delivery_id=d.delivery_id)
        bound = log.bind(partner=d.partner, message_id=d.message_id, delivery_id=d.delivery_id, target=d.target)
        target = self.targets.get(d.target)
        connector = self.connectors.get(d.target)
        started = time.monotonic()
        status = None
        error: DeliveryError | None = None
        if target is None or connector is None:
            error = PermanentDeliveryError(f"target {d.target!r} is not configured in gateway.toml")
        else:
            job = DeliveryJob(delivery_id=d.delivery_id, target=d.target, partner=d.partner,
                              document_id=d.document_id, document_type=d.document_type,
                              idempotency_key=d.idempotency_key, body=d.body, attempt=d.attempts,
                              document_number=d.document_number, filename=d.filename)
            try:
                status = await connector.send(job)
            except DeliveryError as exc:
                error = exc
                status = exc.status
            except Exception as exc:  # a connector bug must not lose the delivery: retry it
                bound.exception("connector raised an unexpected error")
                error = RetryableDeliveryError(f"unexpected {exc.__class__.__name__}: {exc}")
        duration_ms = (time.monotonic() - started) * 1000
        now = time.time()
        try:
            await self._settle(d, target, error, status, duration_ms, now, bound)
        except Exception:
            # The lease expires and the delivery is claimed again: at-least-once, same key.
            bound.exception("could not record the delivery outcome")

    async def _settle(self, d: Any, target: Target | None, error: DeliveryError | None, status: int | None,
                      duration_ms: float, now: float, bound: Any) -> None:
        breaker = self.breakers.get(d.target)
        if error is None:
            if breaker and breaker.state is not BreakerState.CLOSED:
                await self._breaker_event(d, breaker.record_success())
            elif breaker:
                breaker.record_success()
            await self.call(self.store.complete, d.delivery_id, self.owner, duration_ms=duration_ms,
                            http_status=status, now=now)
            bound.info("delivered", attempt=d.attempts, duration_ms=round(duration_ms, 1))
            if self.metrics is not None:
                self.metrics.delivery_settled(d, "delivered", duration_ms, now, breaker.state if breaker else None)
            return
        if not error.retryable or target is None:
            await self.call(self.store.bury, d.delivery_id, self.owner, error=str(error), http_status=status,
                            duration_ms=duration_ms, now=now)
            bound.warning("dead-lettered", error=str(error), attempt=d.attempts)
            if self.metrics is not None:
                self.metrics.delivery_settled(d, "dead", duration_ms, now)
            return
        if breaker:
            before = breaker.state
            after = breaker.record_failure(now)
            if after is not before:
                await self._breaker_event(d, after)
        delay = target.retry.delay(d.attempts)
        if error.retry_after:
            delay = max(delay, min(error.retry_after, target.retry.max_delay))
        if target.retry.gives_up(d.attempts, now - d.created_at, delay):
            await self.call(self.store.bury, d.delivery_id, self.owner, http_status=status, duration_ms=duration_ms,
                            error=f"gave up after {d.attempts} attempts: {error}", now=now)
            bound.warning("dead-lettered", error=str(error), attempt=d.attempts)
            if self.metrics is not None:
                self.metrics.delivery_settled(d, "dead", duration_ms, now, breaker.state if breaker else None)
            return
        await self.call(self.store.reschedule, d.delivery_id, self.owner, next_attempt_at=now + delay,
                        error=str(error), http_status=status, duration_ms=duration_ms, now=now)
        bound.info("retry scheduled", error=str(error), attempt=d.attempts, delay_s=round(delay, 2))
        if self.metrics is not None:
            self.metrics.delivery_settled(d, "retry", duration_ms, now, breaker.state if breaker else None)

    async def _breaker_event(self, d: Any, state: BreakerState) -> None:
        log.warning("circuit breaker", target=d.target, state=state.value)
        if self.metrics is not None:
            self.metrics.breaker_changed(d.target, state)
        await self.call(self.store.event, "breaker", state.value, partner=d.partner, delivery_id=d.delivery_id,
                        detail=f"target {d.target}: circuit breaker {state.value}")
