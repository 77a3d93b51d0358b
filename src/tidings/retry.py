"""Retry policy: how many attempts a delivery gets and how long to wait between them.

Backoff is exponential with full jitter around it, so that many consumers failing on the same
outage do not retry in lockstep and hammer the recovering dependency together.
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass

from tidings.errors import ConfigurationError, PermanentError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` deliveries in all; the wait before attempt n+1 is about `base * factor**(n-1)`."""

    max_attempts: int = 8
    base: float = 0.2
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.5
    """Fraction of the delay drawn at random: 0.5 waits between 50 % and 100 % of the nominal delay."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if self.base < 0 or self.factor < 1 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise ConfigurationError("need base >= 0, factor >= 1, max_delay >= 0 and 0 <= jitter <= 1")

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based); any attempt number works."""
        nominal = min(self.max_delay, self.base * self.factor ** self._exponent(attempt))
        spread = nominal * self.jitter * (rng or random).random()
        return nominal - spread

    def _exponent(self, attempt: int) -> int:
        """`attempt - 1`, capped where the delay has reached `max_delay` anyway: `factor ** n`
        overflows a float (OverflowError) once n passes about 1,000 (for factor 2)."""
        exponent = max(0, attempt - 1)
        if exponent == 0 or self.factor == 1 or self.base == 0 or self.base >= self.max_delay:
            return 0  # the delay does not grow, or is max_delay from the first attempt
        reach = (math.log(self.max_delay) - math.log(self.base)) / math.log(self.factor)  # inf if max_delay is
        fits = math.log(sys.float_info.max) / math.log(self.factor) - 2  # factor ** ceil(fits) is finite
        return min(exponent, math.ceil(min(fits, reach)))

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Transient errors retry until attempts run out; a `PermanentError` never does."""
        return not isinstance(error, PermanentError) and attempt < self.max_attempts
