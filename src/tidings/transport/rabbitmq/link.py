"""One AMQP connection kept up, and publishing with confirms over it.

`Link` connects once at start (failing loudly), then watches the connection: when it closes
for any reason but `close()`, it reconnects with capped exponential backoff and jitter and runs
the registered hooks in order (the transport re-declares its topology, each subscription opens
a new channel and consumes again). `generation` counts connections, so a delivery can tell it
came over a connection that is gone: the broker has already put it back in its queue.

Publishing uses one confirm-mode channel: a batch is written without waiting for each frame
to drain and its confirms are gathered, so a batch costs about one round trip.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from pamqp.commands import Basic

from tidings.errors import PublishError, TransportError
from tidings.transport.rabbitmq.config import RabbitConfig

log = logging.getLogger("tidings.transport.rabbitmq")

Hook = Callable[[], Awaitable[None]]
Outgoing = tuple[str, str, Basic.Properties, bytes]
"""(exchange, routing key, properties, body) of one message to publish."""

BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)
"""What a broker operation raises when the connection or channel is gone or refuses."""
_RECONNECT_ERRORS: tuple[type[BaseException], ...] = (*BROKER_ERRORS, RuntimeError)


class Link:
    """The transport's connection: start, reconnect, hooks, and confirmed publishing."""

    def __init__(self, config: RabbitConfig) -> None:
        self.config = config
        self.connection: AbstractConnection | None = None
        self.generation = 0
        self._hooks: list[Hook] = []
        self._up = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._publisher: tuple[AbstractChannel, aiormq.Channel] | None = None
        self._publisher_lock = asyncio.Lock()

    def add_hook(self, hook: Hook) -> None:
        """Run `hook` after every (re)connection, after the hooks added before it."""
        self._hooks.append(hook)

    def remove_hook(self, hook: Hook) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)

    async def start(self) -> None:
        """Connect now; raise `TransportError` if the broker cannot be reached."""
        try:
            await self._connect()
        except BROKER_ERRORS as error:
            raise TransportError(f"cannot connect to {self.config.redacted()}: {error!r}") from error
        self._supervisor = asyncio.create_task(self._supervise(), name="tidings-rabbitmq-link")

    async def close(self) -> None:
        self._closing = True
        self._up.clear()
        self._lost.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self.connection is not None and not self.connection.is_closed:
            await self.connection.close()

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def up(self) -> bool:
        return self._up.is_set()

    async def wait_up(self) -> AbstractConnection:
        """The live connection, once there is one (callers bound the wait)."""
        while True:
            if self._closing:
                raise TransportError("the transport is closed")
            connection = self.connection
            if self._up.is_set():
                if connection is not None and not connection.is_closed:
                    return connection
                self._on_close(connection)  # closed, and its callback has not run yet
            await self._up.wait()

    async def channel(self, *, confirms: bool = False, wait: bool = True) -> AbstractChannel:
        """A new channel on the current connection, waiting for one if it is down. Hooks get the
        connection being set up while they run; they (and anything holding a lock a hook needs)
        pass `wait=False`, which raises `ChannelInvalidStateError` instead of waiting."""
        while True:
            connection = self.connection
            if connection is None or connection.is_closed:
                if not wait:
                    raise aiormq.exceptions.ChannelInvalidStateError("not connected")
                connection = await self.wait_up()
            try:
                return await connection.channel(publisher_confirms=confirms)
            except RuntimeError as error:  # "<Connection ...> closed": its socket is gone already
                log.debug("opening a channel failed (%r): waiting for the next connection", error)
                self._on_close(connection, error)
                if not wait:
                    raise aiormq.exceptions.ChannelInvalidStateError(str(error)) from error
                await asyncio.sleep(0)

    # -- (re)connecting ---------------------------------------------------------------------------

    async def _connect(self) -> None:
        connection = await aio_pika.connect(self.config.url)
        try:
            self.connection = connection
            self.generation += 1
            self._publisher = None
            self._lost.clear()
            connection.close_callbacks.add(self._on_close)
            for hook in list(self._hooks):
                await hook()
        except BaseException:
            await connection.close()
            raise
        self._up.set()

    def _on_close(self, sender: Any, error: BaseException | None = None) -> None:
        if sender is self.connection:
            self._up.clear()
            self._lost.set()
            if not self._closing:
                log.warning("connection to %s lost: %r", self.config.redacted(), error)

    async def _supervise(self) -> None:
        while True:
            await self._lost.wait()
            if self._closing:
                return
            delay = 0.1
            while not self._closing:
                try:
                    await self._connect()
                except _RECONNECT_ERRORS as error:
                    log.warning(
                        "reconnecting to %s failed (%r), next try in %.1fs", self.config.redacted(), error, delay
                    )
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, self.config.reconnect_max)
                else:
                    log.info("reconnected to %s (connection %d)", self.config.redacted(), self.generation)
                    break

    # -- publishing ---------------------------------------------------------------------------------

    async def _publisher_channel(self) -> aiormq.Channel:
        current = self._publisher
        if current is not None and not current[0].is_closed and not current[1].is_closed:
            return current[1]
        async with self._publisher_lock:
            current = self._publisher
            if current is None or current[0].is_closed or current[1].is_closed:
                channel = await self.channel(confirms=True)
                # the concrete aiormq channel: its basic_publish can skip waiting for each frame to drain
                current = (channel, cast(aiormq.Channel, await channel.get_underlay_channel()))
                self._publisher = current
            return current[1]

    async def send(self, messages: Sequence[Outgoing]) -> None:
        """Publish `messages` in order and return once the broker confirmed every one of them.

        Waits for a connection first; raises `PublishError` when the broker nacks any message,
        when the connection or channel closes before every confirm arrived, or when all this
        takes longer than `publish_timeout`. Unroutable messages are not an error (`mandatory`
        is off): in pub/sub an event no group subscribes to is simply not needed by anyone.
        """
        if not messages:
            return
        try:
            async with asyncio.timeout(self.config.publish_timeout):
                channel = await self._publisher_channel()
                results = await asyncio.gather(
                    *(
                        channel.basic_publish(body, exchange=exchange, routing_key=key, properties=props, wait=False)
                        for exchange, key, props, body in messages
                    ),
                    return_exceptions=True,
                )
        except TimeoutError:
            raise PublishError(
                f"{len(messages)} message(s) not confirmed within {self.config.publish_timeout}s "
                f"(broker {self.config.redacted()} {'up' if self.up else 'unreachable'})"
            ) from None
        except BROKER_ERRORS as error:
            raise PublishError(f"publishing {len(messages)} message(s) failed: {error!r}") from error
        failed: list[object] = [result for result in results if isinstance(result, BaseException)]
        failed += [result for result in results if isinstance(result, Basic.Nack | Basic.Reject)]
        if failed:
            first = failed[0]
            raise PublishError(
                f"{len(failed)} of {len(messages)} message(s) not confirmed by the broker: {first!r}"
            ) from (first if isinstance(first, BaseException) else None)
