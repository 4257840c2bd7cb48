"""The token bucket behind MAX_ROWS_PER_SECOND, on a fake clock (pure logic)."""

from __future__ import annotations

import pytest

from transforms.rate_limit import RateLimiter, RunLimiter


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


# ---------------------------------------------------------------- a run's share (RunLimiter)


class FakeLedger:
    """The ``writers`` table on the fake clock: answers at once, or fails when told to."""

    def __init__(self, clock):
        self.clock = clock
        self.beats: dict[str, float] = {}
        self.failing = False
        self.asked = 0

    def beat(self, writer, then):
        self.asked += 1
        if self.failing:
            raise OSError("ledger unreachable")
        self.beats[writer] = self.clock.now
        then({name: self.clock.now - seen for name, seen in self.beats.items()})


def run_limiter(clock, ledger, writer, limit=1200, processes=3):
    return RunLimiter(limit, processes, ledger, writer=writer, clock=clock, sleep=clock.sleep)


def test_the_share_is_the_static_one_until_the_ledger_answers():
    clock = FakeClock()
    ledger = FakeLedger(clock)
    ledger.failing = True
    limiter = run_limiter(clock, ledger, "a")
    assert limiter.rate == 400  # 1200 / 3 expected processes
    limiter.acquire(10)
    assert limiter.rate == 400 and limiter.writers_seen is None
    ledger.failing = False
    clock.now += RunLimiter.HEARTBEAT_SECONDS
    limiter.acquire(10)
    assert limiter.rate == 1200 and limiter.writers_seen == 1  # alone in the run


def test_the_share_follows_the_live_writers():
    clock = FakeClock()
    ledger = FakeLedger(clock)
    limiters = [run_limiter(clock, ledger, name) for name in "abc"]
    for limiter in limiters:
        limiter.acquire(1)
    clock.now += RunLimiter.HEARTBEAT_SECONDS
    for limiter in limiters:
        limiter.acquire(1)
    assert [limiter.rate for limiter in limiters] == [400, 400, 400]
    # c stops writing: once its last beat is older than the window, a and b share the limit.
    a, b, _ = limiters
    for _ in range(int(RunLimiter.WINDOW_SECONDS / RunLimiter.HEARTBEAT_SECONDS) + 1):
        clock.now += RunLimiter.HEARTBEAT_SECONDS
        a.acquire(1)
        b.acquire(1)
    assert (a.rate, b.rate, a.writers_seen) == (600, 600, 2)
    # A writer that beat within the window still counts; one that comes back counts again.
    clock.now += RunLimiter.HEARTBEAT_SECONDS
    limiters[2].acquire(1)
    assert limiters[2].rate == 400
    clock.now += RunLimiter.HEARTBEAT_SECONDS
    a.acquire(1)
    assert a.rate == 400


def test_a_writer_beats_at_most_every_heartbeat():
    clock = FakeClock()
    ledger = FakeLedger(clock)
    limiter = run_limiter(clock, ledger, "a", limit=1_000_000)
    for _ in range(100):
        limiter.acquire(1)
        clock.now += 0.01
    assert ledger.asked == 2  # at 0 s and at 0.5 s of the 1 s


def test_a_writer_waiting_for_its_turn_keeps_beating():
    """A low limit: one bundle waits longer than the window, and the writer still counts."""
    clock = FakeClock()
    ledger = FakeLedger(clock)
    a, b = run_limiter(clock, ledger, "a", limit=20, processes=2), run_limiter(
        clock, ledger, "b", limit=20, processes=2)
    b.acquire(1)
    a.acquire(50)  # 5 s at a's 10 rows/s
    assert clock.now == pytest.approx(5.0)
    assert ledger.asked >= 1 + 5 / RunLimiter.HEARTBEAT_SECONDS
    assert ledger.beats["a"] >= clock.now - RunLimiter.HEARTBEAT_SECONDS


def test_a_ledger_error_keeps_the_last_share():
    clock = FakeClock()
    ledger = FakeLedger(clock)
    a, b = run_limiter(clock, ledger, "a"), run_limiter(clock, ledger, "b")
    a.acquire(1)
    b.acquire(1)
    clock.now += RunLimiter.HEARTBEAT_SECONDS
    a.acquire(1)
    assert a.rate == 600
    ledger.failing = True
    for _ in range(10):  # b's beats grow old, but a cannot see that
        clock.now += RunLimiter.HEARTBEAT_SECONDS
        a.acquire(1)
    assert a.rate == 600
    ledger.failing = False
    clock.now += RunLimiter.HEARTBEAT_SECONDS
    a.acquire(1)
    assert a.rate == 1200


def test_an_answer_that_never_comes_delays_the_next_beat_only_so_long():
    clock = FakeClock()
    answers = []

    class SilentLedger:
        def beat(self, writer, then):
            answers.append(then)

    limiter = RunLimiter(1000, 2, SilentLedger(), writer="a", clock=clock, sleep=clock.sleep)
    limiter.acquire(1)
    clock.now += RunLimiter.ANSWER_SECONDS - 0.1
    limiter.acquire(1)
    assert len(answers) == 1  # still waiting for the first answer
    clock.now += 0.2
    limiter.acquire(1)
    assert len(answers) == 2
    answers[1]({"a": 0.0, "b": 0.3})
    assert limiter.rate == 500


def test_the_run_holds_its_limit_when_a_writer_ends_early():
    """Two writers, one with a third of the rows: the run writes at its limit throughout,
    but for the window after the first one ends."""
    clock = FakeClock()
    ledger = FakeLedger(clock)
    limit = 1000
    writers = {"a": [run_limiter(clock, ledger, "a", limit, 2), 10_000],
               "b": [run_limiter(clock, ledger, "b", limit, 2), 20_000]}
    # Interleave the two on the one fake clock: each bundle of 10 goes to the writer whose
    # bucket lets it go first.
    ready = {name: 0.0 for name in writers}
    written = 0
    while any(left for _, left in writers.values()):
        name = min((name for name, (_, left) in writers.items() if left), key=ready.get)
        limiter, left = writers[name]
        clock.now = max(clock.now, ready[name])
        start = clock.now
        limiter.acquire(10)
        ready[name] = clock.now
        clock.now = start  # the other writer runs meanwhile
        writers[name][1] -= 10
        written += 10
    elapsed = max(ready.values())
    assert limit * 0.95 <= written / elapsed <= limit * 1.01, written / elapsed


def test_without_a_ledger_the_share_is_static():
    clock = FakeClock()
    limiter = RunLimiter(1200, 4, None, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        limiter.acquire(30)
    assert limiter.rate == 300
    assert clock.now == pytest.approx(10.0, rel=0.01)


def test_a_rate_change_keeps_at_most_one_second_of_tokens():
    clock = FakeClock()
    limiter = RateLimiter(1000, clock=clock, sleep=clock.sleep)
    clock.now = 100.0
    limiter.rate = 100
    limiter.acquire(100)  # the bucket holds one second of the new rate
    assert clock.now == 100.0
    limiter.acquire(100)
    assert clock.now == pytest.approx(101.0)
