"""How an outbox relay (`tidings.store.relay`) batches, waits and backs off, and its hook."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tidings.errors import ConfigurationError
from tidings.retry import RetryPolicy
from tidings.store.outbox import OutboxRow


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """How a relay batches, waits and backs off; times in seconds."""

    batch_size: int = 500
    poll_interval: float = 0.5
    """Longest wait for rows that arrived without a wake-up (another process on SQLite, a lost NOTIFY)."""
    publish_timeout: float = 10.0
    """A publish that takes longer counts as failed; its rows are published again."""
    lease: float = 30.0
    """SQLite: how long a relay's lease lasts without renewal (a dead holder's is taken over at once)."""
    backoff: RetryPolicy = field(default_factory=lambda: RetryPolicy(base=0.1, factor=2.0, max_delay=10.0))
    """Delays between failed cycles (broker or database down); `max_attempts` is not used."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        if min(self.poll_interval, self.publish_timeout, self.lease) <= 0:
            raise ConfigurationError("poll_interval, publish_timeout and lease must be positive")
        if self.publish_timeout >= self.lease:
            raise ConfigurationError("publish_timeout must be shorter than lease")


PublishedHook = Callable[[Sequence[OutboxRow], float], None]
"""Called after each batch was confirmed (on PostgreSQL its deletion committed; on SQLite it may
still be under way, see `Relay._cycle_leased`), with its rows and the time (Unix seconds) the
broker confirmed it; `confirmed_at - row.created_at` is the row's commit-to-publish delay (of it,
`relay.cycle_started_at - row.created_at` was spent waiting for the cycle)."""
