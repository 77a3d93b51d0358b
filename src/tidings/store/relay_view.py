"""`RelayView`: what a relay reads in one statement, kept apart so every dialect can import it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RelayView:
    """What a relay reads in one statement (`StoreDialect.relay_read`): the source's relay row and
    its oldest outbox rows."""

    holder: str | None
    """The relay row's `owner`: the lease holder (SQLite) or the last publisher (PostgreSQL)."""
    lease_until: float
    rows: list[tuple[int, str, bytes, float]]
    """`(id, headers, body, created_at)` of the outbox rows, in `id` order."""
