"""Which errors are retried, when the consistency level is downgraded, and how often."""

from __future__ import annotations

import itertools

from cassandra import (
    ConsistencyLevel,
    InvalidRequest,
    OperationTimedOut,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionShutdown
from cassandra.protocol import OverloadedErrorMessage

from transforms.retry import RetryPolicy, call_with_retries, is_outage, is_recoverable

QUORUM, ONE = ConsistencyLevel.QUORUM, ConsistencyLevel.ONE


class Script:
    """Raises the scripted errors in turn, then returns 'ok'; records the levels it was asked."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.levels = []

    def __call__(self, level):
        self.levels.append(level)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run(script, policy, **kwargs):
    sleeps = []
    outcome = call_with_retries(script, policy, describe=lambda: "test write",
                                sleep=sleeps.append, **kwargs)
    return outcome, sleeps


def test_unavailable_at_quorum_is_retried_at_once_at_one():
    script = Script(Unavailable("not enough replicas"))
    outcome, sleeps = run(script, RetryPolicy(retries=3))
    assert outcome.ok and outcome.result == "ok"
    assert script.levels == [QUORUM, ONE]
    assert outcome.downgraded and outcome.consistency == ONE and outcome.retries == 1
    assert sleeps == []


def test_unavailable_wrapped_in_no_host_available_also_downgrades():
    wrapped = NoHostAvailable("all failed", {"127.0.0.1": Unavailable("x")})
    outcome, _ = run(Script(wrapped), RetryPolicy(retries=2))
    assert outcome.ok and outcome.downgraded


def test_no_host_available_backs_off_exponentially_without_downgrade():
    overloaded = NoHostAvailable("busy", {"127.0.0.1": OperationTimedOut("x"),
                                          "127.0.0.2": Unavailable("y")})
    script = Script(*[overloaded] * 3)
    outcome, sleeps = run(script, RetryPolicy(retries=3, initial_backoff=1.0, max_backoff=100))
    assert outcome.ok and not outcome.downgraded
    assert script.levels == [QUORUM] * 4
    assert len(sleeps) == 3 and sleeps[0] < sleeps[2]  # fuzzed, but growing by about 2x


def test_retries_run_out():
    script = Script(*[WriteTimeout("slow", write_type=0)] * 10)
    outcome, _ = run(script, RetryPolicy(retries=2, fallback_consistency=None))
    assert not outcome.ok and isinstance(outcome.error, WriteTimeout)
    assert outcome.attempts == 3 and outcome.retries == 2


def test_non_recoverable_error_is_final_at_once():
    script = Script(InvalidRequest("bad value"))
    outcome, sleeps = run(script, RetryPolicy(retries=5))
    assert not outcome.ok and outcome.attempts == 1 and sleeps == []
    assert not is_recoverable(InvalidRequest("x"))


def test_first_error_from_an_async_attempt_counts_as_an_attempt():
    script = Script()
    outcome, _ = run(script, RetryPolicy(retries=1), first_error=Unavailable("x"))
    assert outcome.ok and outcome.attempts == 2 and script.levels == [ONE]


def test_downgrade_off_when_fallback_is_null():
    script = Script(Unavailable("x"), Unavailable("x"))
    outcome, sleeps = run(script, RetryPolicy(retries=1, fallback_consistency=None))
    assert not outcome.ok and script.levels == [QUORUM, QUORUM] and len(sleeps) == 1


class Clock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def run_with_clock(script, policy, clock):
    return call_with_retries(script, policy, describe=lambda: "test write", sleep=clock.sleep,
                             clock=clock)


def test_a_cluster_with_no_host_up_is_an_outage_and_a_lone_host_error_is_not():
    assert is_outage(NoHostAvailable("none up", {}))
    assert is_outage(NoHostAvailable("refused", {"h": ConnectionShutdown("reset")}))
    assert is_outage(ConnectionShutdown("reset"))
    assert not is_outage(NoHostAvailable("mixed", {"h": Unavailable("x")}))
    assert not is_outage(Unavailable("x"))


def test_a_node_shutting_down_is_an_outage_and_a_busy_one_is_not():
    # What a drained node answers in the seconds before its connections close.
    going = OverloadedErrorMessage(0x1001, "Server is shutting down", {})
    busy = OverloadedErrorMessage(0x1001, "Too many in flight requests", {})
    assert is_outage(going)
    assert is_outage(NoHostAvailable("draining", {"h": going}))
    assert not is_outage(busy)
    assert not is_outage(NoHostAvailable("busy", {"h": busy}))


def test_an_outage_is_waited_out_without_using_up_retries():
    clock = Clock()
    script = Script(*[NoHostAvailable("down", {})] * 40)
    outcome = run_with_clock(script, RetryPolicy(retries=1, outage_wait=600), clock)
    assert outcome.ok and outcome.retries == 0 and outcome.attempts == 41
    start, end = outcome.outage
    assert end - start == clock.now - 1000.0 > 40  # backoff grows to 2 s between tries


def test_an_outage_longer_than_the_wait_fails_like_any_error():
    clock = Clock()
    script = Script(*[NoHostAvailable("down", {})] * 1000)
    outcome = run_with_clock(script, RetryPolicy(retries=2, outage_wait=30,
                                                 initial_backoff=1, max_backoff=1), clock)
    assert not outcome.ok and outcome.retries == 2
    assert 30 <= clock.now - 1000.0 < 35


def test_an_outage_runs_out_once_for_every_request_to_the_cluster():
    """The wait is the cluster's, not each request's: after it ran out for one request, the
    next ones to the same cluster fail at once instead of waiting again, until one succeeds."""
    clock = Clock()
    name = f"cluster-{next(itertools.count())}-{id(clock)}"
    policy = RetryPolicy(retries=0, outage_wait=30, cluster=name)
    first = run_with_clock(Script(*[NoHostAvailable("down", {})] * 1000), policy, clock)
    assert not first.ok and clock.now - 1000.0 >= 30
    waited = clock.now
    second = run_with_clock(Script(*[NoHostAvailable("down", {})] * 1000), policy, clock)
    assert not second.ok and clock.now == waited  # no second wait
    assert run_with_clock(Script(), policy, clock).ok  # the cluster is back
    third = run_with_clock(Script(NoHostAvailable("down", {})), policy, clock)
    assert third.ok and third.outage is not None  # a new outage is waited out again
