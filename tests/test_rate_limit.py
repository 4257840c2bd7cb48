"""The token bucket behind MAX_ROWS_PER_SECOND, on a fake clock (pure logic)."""

from __future__ import annotations

import pytest

from transforms.rate_limit import RateLimiter


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_long_run_rate_matches_the_limit():
    clock = FakeClock()
    limiter = RateLimiter(1000, clock=clock, sleep=clock.sleep)
    for _ in range(600):  # 30,000 rows in bundles of 50
        limiter.acquire(50)
    assert clock.now == pytest.approx(30.0, rel=0.01)


def test_no_burst_after_a_pause():
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    clock.now = 3600.0  # an hour idle earns at most one second of rows
    limiter.acquire(100)
    assert clock.now == 3600.0
    limiter.acquire(100)
    assert clock.now == pytest.approx(3601.0)


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        RateLimiter(0)
