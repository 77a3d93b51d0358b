"""PostgreSQL `LISTEN` for outbox commits of other processes: a hint that wakes the relay early.

The notification is only a hint: the relay also polls, so a lost notification or a dropped
listening connection delays publication by at most one poll interval. The connection is a
dedicated asyncpg connection outside the engine's pool; `ensure` reopens it after it dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL

from tidings.errors import ConfigurationError

log = logging.getLogger("tidings.store.notify")


class Listener:
    """Calls `callback()` whenever a notification with `payload` arrives on `channel`."""

    def __init__(self, url: URL, channel: str, payload: str, callback: Callable[[], None]) -> None:
        self._dsn = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        self._channel = channel
        self._payload = payload
        self._callback = callback
        self._connection: Any = None

    async def ensure(self) -> None:
        """Listen, (re)connecting if needed; logs and returns on failure (the relay still polls)."""
        if self._connection is not None and not self._connection.is_closed():
            return
        try:
            import asyncpg
        except ImportError:
            raise ConfigurationError("PostgreSQL needs asyncpg: pip install 'tidings[postgres]'") from None
        await self.close()
        try:
            connection = await asyncpg.connect(self._dsn, timeout=10)
            await connection.add_listener(self._channel, self._notified)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("cannot LISTEN for outbox commits (polling meanwhile): %r", error)
            return
        self._connection = connection

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self._payload:
            self._callback()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=5)
            except Exception:  # a broken connection: make sure it is gone
                connection.terminate()
