"""Which errors are retried, when the consistency level is downgraded, and how often."""

from __future__ import annotations

from cassandra import ConsistencyLevel, InvalidRequest, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable

from transforms.retry import RetryPolicy, call_with_retries, is_recoverable

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
    script = Script(*[NoHostAvailable("down", {})] * 3)
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
