"""PostgreSQL `LISTEN` for outbox commits of other processes: a hint that wakes the relay early.

The notification is only a hint: the relay also polls, so a lost notification or a dropped
listening connection delays publication by at most one poll interval. The connection is a
dedicated asyncpg connection outside the engine's pool; `ensure` reopens it after it dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL

from tidings.errors import ConfigurationError

log = logging.getLogger("tidings.store.notify")
CHANNEL = "tidings_outbox"
"""The notification channel of outbox commits; the payload is the source (service name)."""
RECONNECT_EVERY = 5.0
"""Seconds between attempts to reopen a lost listening connection."""
_PASSED_ON = ("ssl", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword")
"""URL query options that concern the connection itself and are given to asyncpg."""


class Listener:
    """Calls `callback()` whenever a notification with `payload` arrives on `channel`."""

    def __init__(self, url: URL, channel: str, payload: str, callback: Callable[[], None]) -> None:
        query = {name: value for name, value in url.query.items() if name in _PASSED_ON}
        self._dsn = url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
        self._channel = channel
        self._payload = payload
        self._callback = callback
        self._connection: Any = None
        self._last_attempt = -RECONNECT_EVERY

    async def ensure(self) -> None:
        """Listen, (re)connecting if needed and not tried in the last `RECONNECT_EVERY` seconds;
        logs and returns on failure (the relay still polls)."""
        if self._connection is not None and not self._connection.is_closed():
            return
        if time.monotonic() - self._last_attempt < RECONNECT_EVERY:
            return
        self._last_attempt = time.monotonic()
        try:
            import asyncpg
        except ImportError:
            raise ConfigurationError("PostgreSQL needs asyncpg: pip install 'tidings[postgres]'") from None
        await self.close()
        try:
            self._connection = await asyncpg.connect(self._dsn, timeout=2)
            await self._connection.add_listener(self._channel, self._notified)
        except Exception as error:
            log.warning("cannot LISTEN for outbox commits (polling meanwhile): %r", error)
            await self.close()

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
