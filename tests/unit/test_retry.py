import random

import pytest

from tidings.errors import ConfigurationError, Malformation, MalformedMessage, PermanentError
from tidings.retry import RetryPolicy


def test_delay_grows_exponentially_within_jitter_and_cap() -> None:
    policy = RetryPolicy(base=0.1, factor=2, max_delay=1.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, nominal in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delays = [policy.delay(attempt, rng=rng) for _ in range(200)]
        assert min(delays) >= nominal * 0.5
        assert max(delays) <= nominal
        assert max(delays) - min(delays) > nominal * 0.3  # jitter actually spreads retries


def test_permanent_errors_never_retry_and_attempts_run_out() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.should_retry(RuntimeError("db down"), attempt=1)
    assert policy.should_retry(RuntimeError("db down"), attempt=2)
    assert not policy.should_retry(RuntimeError("db down"), attempt=3)
    assert not policy.should_retry(PermanentError("bad order"), attempt=1)
    assert not policy.should_retry(MalformedMessage(Malformation.NOT_JSON, "x"), attempt=1)


@pytest.mark.parametrize(
    "options", [{"max_attempts": 0}, {"base": -1}, {"factor": 0.5}, {"jitter": 1.5}, {"max_delay": -1}]
)
def test_invalid_policies_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempt", [1_000, 1_025, 1_100, 10**6, 10**18])
@pytest.mark.parametrize(
    "policy",
    [
        RetryPolicy(),
        RetryPolicy(base=0.1, factor=2.0, max_delay=10.0),  # the relay's backoff
        RetryPolicy(base=0.0, max_delay=0.0),
        RetryPolicy(base=1.0, factor=10.0, max_delay=float("inf"), jitter=0.0),
        RetryPolicy(base=5.0, factor=1.0, max_delay=3.0),
    ],
)
def test_delay_of_any_attempt_number_is_capped_without_overflow(policy: RetryPolicy, attempt: int) -> None:
    """`factor ** (attempt - 1)` overflows a float after about 1,000 attempts; a relay failing that
    many cycles in a row (a long outage) died of the OverflowError in its error handler."""
    delay = policy.delay(attempt, rng=random.Random(3))
    assert 0 <= delay <= policy.max_delay
    if policy.max_delay != float("inf"):
        assert delay >= policy.max_delay * (1 - policy.jitter)
