"""Retry policy and circuit breaker: pure decisions."""

import random

from gateway.retry import BreakerState, CircuitBreaker, RetryPolicy


def test_delays_grow_exponentially_and_are_capped():
    policy = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=10.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_spreads_delays_within_bounds():
    policy = RetryPolicy(initial_delay=10.0, jitter=0.25)
    rng = random.Random(7)
    delays = [policy.delay(1, rng) for _ in range(500)]
    assert min(delays) >= 7.5 and max(delays) <= 12.5
    assert len({round(d, 3) for d in delays}) > 100   # really spread, not one value


def test_gives_up_on_attempts_and_on_age():
    policy = RetryPolicy(max_attempts=3, max_age=100.0)
    assert not policy.gives_up(2, age=10)
    assert policy.gives_up(3, age=10)
    assert policy.gives_up(1, age=90, next_delay=20)   # the next try would come too late
    assert not policy.gives_up(1, age=90, next_delay=5)


def test_breaker_opens_after_threshold_and_half_opens_after_pause():
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=10)
    for _ in range(2):
        assert breaker.record_failure(now=0) is BreakerState.CLOSED
    assert breaker.record_failure(now=1) is BreakerState.OPEN
    assert not breaker.allows(now=5)
    assert breaker.allows(now=11)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.started()
    assert not breaker.allows(now=11.5)   # only one trial at a time


def test_failed_trial_reopens_and_successful_trial_closes():
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=10)
    breaker.record_failure(now=0)
    assert breaker.allows(now=10)
    breaker.started()
    assert breaker.record_failure(now=10) is BreakerState.OPEN
    assert not breaker.allows(now=15)
    assert breaker.allows(now=20)
    breaker.started()
    assert breaker.record_success() is BreakerState.CLOSED
    assert breaker.allows(now=20) and breaker.failures == 0
