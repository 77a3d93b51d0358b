"""One AMQP connection kept up, and publishing with confirms over it.

`Link` connects at start -- retrying while the broker is unreachable, for up to
`connect_timeout` seconds, but failing at once when it refuses the credentials or the vhost --
then watches the connection: when it closes for any reason but `close()`, it reconnects and runs
the registered hooks in order (the transport re-declares its topology, each subscription opens
a new channel and consumes again). `generation` counts connections, so a delivery can tell it
came over a connection that is gone: the broker has already put it back in its queue.

Both retry with exponential backoff and jitter (`tidings.retry.RetryPolicy`, capped at
`reconnect_max`), and log a warning with the attempt count for attempts 1, 2, 4, 8... and every
60th (debug for the others). While the connection is down, whoever needs a channel (a publish,
an admin call) waits for the next connection instead of trying the dead one again, and is woken
the moment it is up.

A URL naming several nodes of a cluster (`RabbitConfig.endpoints`) is one broker to `Link`: each
(re)connection attempt tries the nodes in turn, starting with the one after the node it was last
connected to (which is likely the one that just failed), and a round that reaches none of them
counts as one failed attempt. A node that is down refuses at once on a reachable host; one that
does not answer is given `nodes.NODE_TIMEOUT` seconds. What was declared is declared again on the
node now connected to (quorum queues are already there, with their messages, on every node).

Publishing uses one confirm-mode channel: a batch is written without waiting for each frame
to drain and its confirms are gathered, so a batch costs about one round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from tidings.errors import PublishError, TransportError
from tidings.retry import RetryPolicy
from tidings.transport.rabbitmq import nodes
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
_REFUSED: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ProbableAuthenticationError,  # 403 ACCESS_REFUSED: wrong user or password
    aiormq.exceptions.ConnectionNotAllowed,  # 530 NOT_ALLOWED: no such vhost, or no access to it
)
"""What the broker answers when it is there but will not have us: waiting does not help."""


SETUP_TIMEOUT = 60.0
"""Seconds the hooks of one reconnection (declaring the topology, consuming again) may take
before the attempt is abandoned and the next one starts: a broker can take a connection and
then stop answering on it, and a reconnection that waits for it forever never consumes again."""


class Link:
    """The transport's connection: start, reconnect, hooks, and confirmed publishing."""

    def __init__(self, config: RabbitConfig) -> None:
        self.config = config
        self.connection: AbstractConnection | None = None
        self.generation = 0
        self.endpoint = 0
        """Index in `config.endpoints` of the node of the current (or last) connection."""
        self._hooks: list[Hook] = []
        self._up = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._publisher: tuple[AbstractChannel, aiormq.Channel] | None = None
        self._publisher_lock = asyncio.Lock()
        self._backoff = RetryPolicy(base=0.1, factor=2.0, max_delay=config.reconnect_max, jitter=0.5)

    def add_hook(self, hook: Hook) -> None:
        """Run `hook` after every (re)connection, after the hooks added before it."""
        self._hooks.append(hook)

    def remove_hook(self, hook: Hook) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)

    async def start(self) -> None:
        """Connect, trying again with backoff while the broker is unreachable; raise
        `TransportError` after `connect_timeout` seconds, or at once if the broker refuses us."""
        loop = asyncio.get_running_loop()
        timeout = self.config.connect_timeout
        deadline = loop.time() + timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 5.0)):  # one attempt may hang
                    await self._connect()
                break
            except _REFUSED as error:
                raise TransportError(f"{self.config.redacted()} refused the connection: {error!r}") from error
            except BaseException as error:
                if not nodes.failed_attempt(error):
                    raise
                left = deadline - loop.time()
                if left <= 0:
                    where = self.config.redacted()
                    raise TransportError(
                        f"cannot connect to {where} after {attempt} attempt(s) in {timeout:g}s: {error!r}"
                    ) from error
                delay = min(self._backoff.delay(attempt), left)  # the last attempt at the deadline
                nodes.log_failed_attempt("connecting", self.config.redacted(), attempt, error, delay, BROKER_ERRORS)
                await asyncio.sleep(delay)
        if attempt > 1:
            log.warning("connected to %s at attempt %d", self.config.redacted(), attempt)
        self._supervisor = asyncio.create_task(self._supervise(), name="tidings-rabbitmq-link")
        self._supervisor.add_done_callback(self._supervisor_ended)

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        """Reconnecting ends with `close()` only: say so loudly if it ever ends otherwise."""
        if not self._closing:
            ending = "was cancelled" if task.cancelled() else f"raised {task.exception()!r}"
            log.error("reconnecting to %s stopped (%s): it will not recover", self.config.redacted(), ending)

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
            # with `wait`, never the connection that just failed: no spin while it is down
            connection = await self.wait_up() if wait else self._being_set_up()
            try:
                return await connection.channel(publisher_confirms=confirms)
            except RuntimeError as error:  # "<Connection ...> closed": its socket is gone already
                log.debug("opening a channel failed (%r): waiting for the next connection", error)
                self._on_close(connection, error)  # marks it down, so `wait_up` waits for the next
                if not wait:
                    raise aiormq.exceptions.ChannelInvalidStateError(str(error)) from error

    def _being_set_up(self) -> AbstractConnection:
        connection = self.connection
        if connection is None or connection.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError("not connected")
        return connection

    # -- (re)connecting ---------------------------------------------------------------------------

    async def _connect(self) -> None:
        connection = await self._reach()
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

    async def _reach(self) -> AbstractConnection:
        start = self.endpoint + 1 if self.generation else 0
        self.endpoint, connection = await nodes.connect_any(self.config.endpoints, start, _REFUSED)
        return connection

    def _on_close(self, sender: Any, error: BaseException | None = None) -> None:
        """The connection `sender` is gone: mark it down (once) and wake the supervisor."""
        if sender is self.connection:
            was_up = self._up.is_set()
            self._up.clear()
            self._lost.set()
            if was_up and not self._closing:
                log.warning("connection to %s lost: %r", self.config.redacted(), error)

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._lost.wait()
            if self._closing:
                return
            lost_at, attempt = loop.time(), 0
            while not self._closing:
                attempt += 1
                try:  # bounded: the handshake has `NODE_TIMEOUT` per node, the hooks `SETUP_TIMEOUT`
                    async with asyncio.timeout(nodes.NODE_TIMEOUT * len(self.config.endpoints) + SETUP_TIMEOUT):
                        await self._connect()
                except BaseException as error:
                    if not nodes.failed_attempt(error):
                        raise
                    delay = self._backoff.delay(attempt)
                    nodes.log_failed_attempt(
                        "reconnecting", self.config.redacted(), attempt, error, delay, BROKER_ERRORS
                    )
                    await asyncio.sleep(delay)
                else:
                    log.warning(
                        "reconnected to %s at attempt %d, %.1fs after the connection was lost (connection %d)",
                        self.config.redacted(),
                        attempt,
                        loop.time() - lost_at,
                        self.generation,
                    )
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

    async def send(self, messages: Sequence[Outgoing], *, mandatory: bool = False) -> None:
        """Publish `messages` in order and return once the broker confirmed every one of them.

        Waits for a connection first; raises `PublishError` when the broker nacks any message,
        when the connection or channel closes before every confirm arrived, or when all this
        takes longer than `publish_timeout`. Unroutable messages are not an error unless
        `mandatory`: in pub/sub an event no group subscribes to is simply not needed by anyone,
        but a copy sent to one named queue (a retry, a dead letter) must reach it, and in a
        cluster that queue can be unavailable; with `mandatory` a returned message fails too.
        """
        if not messages:
            return
        try:
            async with asyncio.timeout(self.config.publish_timeout):
                channel = await self._publisher_channel()
                results = await asyncio.gather(
                    *(
                        channel.basic_publish(
                            body, exchange=exchange, routing_key=key, properties=props, mandatory=mandatory, wait=False
                        )
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
        failed += [result for result in results if isinstance(result, Basic.Nack | Basic.Reject | DeliveredMessage)]
        if failed:
            first = failed[0]
            raise PublishError(
                f"{len(failed)} of {len(messages)} message(s) not confirmed by the broker: {first!r}"
            ) from (first if isinstance(first, BaseException) else None)
