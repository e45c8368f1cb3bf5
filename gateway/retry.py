"""Pure retry strategy, per-target circuit breaker and rate limit: decisions only, no I/O, no clocks of their own."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by the delivery's age.

    The n-th failed attempt waits ``initial_delay * multiplier**(n-1)`` seconds, capped at
    ``max_delay``, then spread by +/- ``jitter`` (a fraction) so that retries of many
    deliveries to one recovering target do not arrive in lockstep.
    """

    max_attempts: int = 12
    initial_delay: float = 2.0
    max_delay: float = 600.0
    multiplier: float = 2.0
    jitter: float = 0.25
    max_age: float = 72 * 3600.0

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``attempts`` failed attempts (attempts >= 1)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, attempts - 1))
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))

    def gives_up(self, attempts: int, age: float, next_delay: float = 0.0) -> bool:
        """True when no further attempt is allowed: too many attempts, or the next one would be too late."""
        return attempts >= self.max_attempts or age + next_delay > self.max_age


class BreakerState(str, enum.Enum):
    """closed: traffic flows; open: the target is failing, nothing is sent; half-open: one trial."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class CircuitBreaker:
    """Stops sending to a target after consecutive failures; lets one trial through after a pause.

    Deliveries held back by an open breaker are simply not claimed, so they spend no attempts.
    Callers pass ``now`` explicitly, which keeps the breaker deterministic under test.
    """

    failure_threshold: int = 5
    reset_seconds: float = 30.0
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = field(default=False)

    def allows(self, now: float) -> bool:
        """May a delivery to this target start now? Moves open -> half-open when the pause is over."""
        if self.state is BreakerState.OPEN and now - self.opened_at >= self.reset_seconds:
            self.state = BreakerState.HALF_OPEN
            self.trial_in_flight = False
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN:
            return not self.trial_in_flight
        return False

    def started(self) -> None:
        """A delivery was handed to the target; in half-open state it is the single trial."""
        if self.state is BreakerState.HALF_OPEN:
            self.trial_in_flight = True

    def record_success(self) -> BreakerState:
        """The target answered acceptably: close the breaker. Returns the new state."""
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.trial_in_flight = False
        return self.state

    def record_failure(self, now: float) -> BreakerState:
        """A transient failure: count it, open the breaker at the threshold or after a failed trial."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at = now
        self.trial_in_flight = False
        return self.state


@dataclass
class RateLimit:
    """A token bucket: ``rate`` deliveries per second on average, bursts of up to one second's worth.

    A delivery takes a token when it starts; callers pass ``now`` (monotonic seconds).
    """

    rate: float
    tokens: float = 0.0
    at: float | None = None   # None: not used yet, the bucket starts full

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate)

    def available(self, now: float) -> int:
        """Deliveries that may start now."""
        self._refill(now)
        return int(self.tokens)

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0

    def wait(self, now: float) -> float:
        """Seconds until the next delivery may start (0 when one may start now)."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def _refill(self, now: float) -> None:
        if self.at is None:
            self.tokens, self.at = self.capacity, now
            return
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
