"""Believe only signed events: dead-letter what a service's key ring does not vouch for."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tidings.runtime.pipeline import Handle, Message, Outcome
from tidings.security.signing import SignatureRefused, Verifier

log = logging.getLogger("tidings.security")


def with_verification(owner: str, verifier: Verifier) -> Callable[[Handle], Handle]:
    """Check each decoded envelope's signature before anything else handles it: an event that is
    unsigned, tampered, of an unknown or expired key, or signed by a key of another `source` is
    dead-lettered at once (its reason names the rule broken) and never reaches the retry, the
    unit of work or the inbox, so a forged event cannot even claim an inbox id."""

    def middleware(next_: Handle) -> Handle:
        async def handle(message: Message) -> Outcome:
            assert message.envelope is not None  # decoded
            try:
                verifier.check(message.envelope)
            except SignatureRefused as refused:
                log.warning("%s refused event %s: %s", owner, message.envelope.id[:64], refused)
                return Outcome("dead_lettered", reason=str(refused), error=refused)
            return await next_(message)

        return handle

    return middleware
