"""Turn a handler's exception into a retry or a dead letter, by the service's `RetryPolicy`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tidings.errors import PermanentError
from tidings.retry import RetryPolicy
from tidings.runtime.pipeline import Handle, Message, Outcome

log = logging.getLogger("tidings.service")


def with_retry(owner: str, policy: RetryPolicy) -> Callable[[Handle], Handle]:
    """Transient errors retry after `policy.delay(attempt)` until attempts run out; a
    `PermanentError` (validation, `NestedUnitOfWork`, the handler's own) dead-letters at once."""

    def middleware(next_: Handle) -> Handle:
        async def handle(message: Message) -> Outcome:
            try:
                return await next_(message)
            except Exception as error:
                return _decide(owner, policy, message, error)

        return handle

    return middleware


def _decide(owner: str, policy: RetryPolicy, message: Message, error: Exception) -> Outcome:
    attempt = message.attempt
    envelope = message.envelope
    assert envelope is not None  # only decoded messages reach a handler
    if policy.should_retry(error, attempt):
        delay = policy.delay(attempt)
        log.warning(
            "%s: %s %s failed (attempt %d), retrying in %.2fs: %r",
            owner,
            envelope.type,
            envelope.id,
            attempt,
            delay,
            error,
        )
        return Outcome("retried", delay=delay, error=error)
    if isinstance(error, PermanentError):
        reason = f"{type(error).__name__}: {error}"
    else:
        reason = f"gave up after {attempt} attempts: {type(error).__name__}: {error}"
    return Outcome("dead_lettered", reason=reason, error=error)
