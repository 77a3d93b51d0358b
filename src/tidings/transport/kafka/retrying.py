"""Waiting out the retriable errors of Kafka's admin and group calls.

Right after a broker starts, or while a controller or a group coordinator moves, Kafka answers
some requests with errors it marks retriable (`error.retriable` in aiokafka:
`GroupCoordinatorNotAvailableError`, `NotControllerError`, `LeaderNotAvailableError`,
connection errors...): the same request succeeds a moment later. `retrying` runs an idempotent
step again with exponential backoff and jitter until it succeeds, the error is not retriable, or
`within` seconds have passed; then the last error is raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError, for_code

from tidings.retry import RetryPolicy

log = logging.getLogger("tidings.transport.kafka")
T = TypeVar("T")
BACKOFF = RetryPolicy(base=0.1, factor=2.0, max_delay=2.0, jitter=0.5)


async def retrying(step: Callable[[], Awaitable[T]], what: str, within: float) -> T:
    """`await step()`, again after each retriable `KafkaError`, for up to `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    attempt = 0
    while True:
        attempt += 1
        try:
            return await step()
        except KafkaError as error:
            left = deadline - loop.time()
            if not error.retriable or left <= 0:
                raise
            delay = min(BACKOFF.delay(attempt), left)
            loud = attempt & (attempt - 1) == 0  # attempts 1, 2, 4, 8...
            log.log(
                logging.WARNING if loud else logging.DEBUG,
                "%s: retriable error (attempt %d: %r), next attempt in %.2fs",
                what,
                attempt,
                error,
                delay,
            )
            await asyncio.sleep(delay)


def raise_retriable(code: int, detail: object) -> None:
    """Raise the aiokafka error for a response's error `code` if Kafka marks it retriable."""
    error = for_code(code)
    if error.retriable:
        raise error(detail)
