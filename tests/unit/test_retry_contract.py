"""`RetryPolicy`'s exact arithmetic, with the random draw pinned: the nominal delay, how much of it
jitter may take away, the edges of a valid policy, and the degenerate policies that must not
divide by zero or grow."""

from __future__ import annotations

import random
import re

import pytest

from tidings.errors import ConfigurationError
from tidings.retry import RetryPolicy


class Draw(random.Random):
    """A random source whose every draw is `value`: the jitter's extremes on demand."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_the_nominal_delay_is_base_times_factor_to_the_attempts_before() -> None:
    policy = RetryPolicy(base=0.1, factor=3.0, max_delay=100.0, jitter=0.5)
    for attempt, nominal in [(1, 0.1), (2, 0.3), (3, 0.9), (4, 2.7)]:
        assert policy.delay(attempt, rng=Draw(0.0)) == pytest.approx(nominal)


def test_jitter_takes_at_most_its_fraction_of_the_nominal_delay() -> None:
    policy = RetryPolicy(base=1.0, factor=2.0, max_delay=100.0, jitter=0.25)
    assert policy.delay(3, rng=Draw(0.0)) == pytest.approx(4.0)
    assert policy.delay(3, rng=Draw(0.5)) == pytest.approx(3.5)
    assert policy.delay(3, rng=Draw(0.999)) == pytest.approx(4.0 * (1 - 0.25 * 0.999))


def test_without_jitter_the_delay_is_exact_and_capped() -> None:
    policy = RetryPolicy(base=0.5, factor=2.0, max_delay=3.0, jitter=0.0)
    assert [policy.delay(attempt, rng=Draw(0.9)) for attempt in (1, 2, 3, 4, 50)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_the_module_random_source_is_used_when_none_is_given() -> None:
    policy = RetryPolicy(base=1.0, factor=2.0, max_delay=10.0, jitter=1.0)
    delays = {policy.delay(1) for _ in range(50)}
    assert len(delays) > 1
    assert all(0.0 <= delay <= 1.0 for delay in delays)


def test_attempt_numbers_below_one_wait_the_first_delay() -> None:
    policy = RetryPolicy(base=0.2, factor=2.0, max_delay=10.0, jitter=0.0)
    assert policy.delay(0) == policy.delay(-3) == policy.delay(1) == 0.2


def test_policies_that_cannot_grow_keep_one_delay() -> None:
    """factor 1, base 0 or a base at the cap: no growth, and no log of 0 or division by log 1."""
    assert RetryPolicy(base=0.5, factor=1.0, jitter=0.0).delay(7) == 0.5
    assert RetryPolicy(base=0.0, factor=2.0, jitter=0.0).delay(7) == 0.0
    assert RetryPolicy(base=5.0, factor=2.0, max_delay=3.0, jitter=0.0).delay(7) == 3.0
    assert RetryPolicy(base=3.0, factor=2.0, max_delay=3.0, jitter=0.0).delay(7) == 3.0


def test_an_unbounded_cap_still_grows_without_overflow() -> None:
    policy = RetryPolicy(base=1.0, factor=2.0, max_delay=float("inf"), jitter=0.0)
    assert policy.delay(11) == 1024.0
    assert policy.delay(5_000) < float("inf")


def test_the_edges_of_a_valid_policy_are_accepted() -> None:
    RetryPolicy(max_attempts=1, base=0.0, factor=1.0, max_delay=0.0, jitter=0.0)
    RetryPolicy(jitter=1.0)


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"base": -0.001}, {"factor": 0.999}, {"max_delay": -0.001}, {"jitter": -0.001}],
)
def test_just_outside_a_valid_policy_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_one_attempt_means_no_retry() -> None:
    policy = RetryPolicy(max_attempts=1)
    assert not policy.should_retry(RuntimeError("down"), attempt=1)
    assert RetryPolicy(max_attempts=2).should_retry(RuntimeError("down"), attempt=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"jitter": 2.0}, "need base >= 0, factor >= 1, max_delay >= 0 and 0 <= jitter <= 1"),
    ],
)
def test_an_invalid_policy_is_refused_with_the_one_line_that_names_the_rule(
    options: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        RetryPolicy(**options)  # type: ignore[arg-type]
