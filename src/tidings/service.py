"""`Service`: handlers for event types, and the run loop that feeds them deliveries.

One event's journey through a service with a database::

    delivery ─► decode ─► one transaction: inbox claim + handler's rows + outbox rows ─► commit ─► ack
                                                                  outbox relay ─► transport.publish

Without a database the follow-up events are published straight after the handler returns and
before the ack: still at-least-once, but a redelivery runs the handler again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tidings.context import Context
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError, Malformation, MalformedMessage, NestedUnitOfWork, PermanentError
from tidings.events import Event, Registry
from tidings.observe import ServiceMetrics, Telemetry, tracing
from tidings.observe.http import serve
from tidings.retry import RetryPolicy
from tidings.transport.base import Delivery, Subscription, Transport, connect

if TYPE_CHECKING:
    from tidings.saga import Saga, TimeoutSweeper
    from tidings.store import Store
    from tidings.store.relay import Relay

log = logging.getLogger("tidings.service")

E = TypeVar("E", bound=Event)
S = TypeVar("S", bound="Saga")
Handler = Callable[[E, Context], Awaitable[None]]
DEFAULT_BROKER = "sqlite:///tidings-broker.db"
MALFORMED = "(malformed)"
"""The `type` label of deliveries that could not be decoded into a handled event."""
_handling: ContextVar[Service | None] = ContextVar("tidings_handling", default=None)
"""The service whose handler the current task is running (each delivery has its own task)."""


class Service:
    """A named service: its handlers, its broker, its own database, and how it runs.

    `Service("inventory", broker="sqlite:///data/broker.db", database="sqlite+aiosqlite:///data/inventory.db")`.
    The service consumes as the consumer group named after it, so replicas of one service share
    the work and every other service gets its own copy of each event.
    """

    def __init__(
        self,
        name: str,
        *,
        broker: str = DEFAULT_BROKER,
        database: str | None = None,
        registry: Registry | None = None,
        concurrency: int = 16,
        retry: RetryPolicy | None = None,
        drain_timeout: float = 30.0,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        self.name = name
        self.group = name
        self.broker_url = broker
        self.database_url = database
        self.registry = registry or Registry()
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.drain_timeout = drain_timeout
        self.stats: Counter[str] = Counter()
        self.telemetry = Telemetry(name, broker)
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.published_types: list[str] = []
        """What `publishes` declared: documentation (`tidings asyncapi`), not enforced."""
        self._endpoint: asyncio.Server | None = None
        self._sagas: dict[str, type[Saga]] = {}
        self._saga_timeouts: TimeoutSweeper | None = None
        self._handlers: dict[str, Callable[[Any, Context], Awaitable[None]]] = {}
        self._transport: Transport | None = None
        self._store: Store | None = None
        self._relay: Relay | None = None
        self._subscription: Subscription | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    # -- registration ----------------------------------------------------------------------------

    def on(self, event_class: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        """Register the decorated coroutine as this service's handler of `event_class`."""

        def decorate(handler: Handler[E]) -> Handler[E]:
            if event_class.event_type in self._handlers:
                raise ConfigurationError(f"{self.name} already handles {event_class.event_type!r}")
            self.registry.register(event_class)
            self._handlers[event_class.event_type] = handler
            return handler

        return decorate

    def publishes(self, *event_classes: type[Event]) -> None:
        """Declare the event types this service publishes, for its AsyncAPI document."""
        for event_class in event_classes:
            self.registry.register(event_class)
            if event_class.event_type not in self.published_types:
                self.published_types.append(event_class.event_type)

    @property
    def handled_types(self) -> list[str]:
        """The event types this service has handlers for (sagas' steps included)."""
        return sorted(self._handlers)

    def saga(self, saga_class: type[S]) -> type[S]:
        """Run `saga_class` in this service (usable as a class decorator); see `tidings.saga`."""
        from tidings.saga import register

        if saga_class.saga_name in self._sagas:
            raise ConfigurationError(f"{self.name} already runs a saga named {saga_class.saga_name!r}")
        register(self, saga_class)
        self._sagas[saga_class.saga_name] = saga_class
        return saga_class

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise ConfigurationError(f"service {self.name!r} is not started")
        return self._transport

    @property
    def store(self) -> Store:
        if self._store is None:
            raise ConfigurationError(f"service {self.name!r} has no database or is not started")
        return self._store

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, apply the database migrations, start the relay and the consumer.

        If any step fails, what was already opened is closed again before the error propagates.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._transport = await connect(self.broker_url)
        if self.database_url is not None:
            from tidings.store import Store
            from tidings.store.relay import Relay

            # A connection per concurrent handler plus the relay's: an overflow connection is
            # closed when it is returned, so a smaller pool would reconnect (TLS, auth) per event.
            self._store = await Store.open(self.database_url, pool_size=self.concurrency + 2)
            self._relay = Relay(self._store, self._transport, source=self.name, telemetry=self.telemetry)
            await self._relay.start()
            if self._sagas:
                from tidings.saga import TimeoutSweeper

                self._saga_timeouts = TimeoutSweeper(self, self._sagas)
                self._saga_timeouts.start()
        if self._handlers:
            self._subscription = await self._transport.subscribe(
                self.group, list(self._handlers), prefetch=self.concurrency * 2
            )
            self._consumer = asyncio.create_task(self._consume(self._subscription), name=f"{self.name}-consumer")
        if self.metrics_port is not None:
            self._endpoint = await serve(self.scrape, self.health, self.metrics_host, self.metrics_port)
            self.metrics_port = self._endpoint.sockets[0].getsockname()[1]  # the real one, if 0 was asked
            log.info("service %s serves /metrics on %s:%d", self.name, self.metrics_host, self.metrics_port)
        log.info("service %s started on %s handling %s", self.name, _redact(self.broker_url), sorted(self._handlers))

    async def stop(self) -> None:
        """Stop taking deliveries, let in-flight ones finish (up to `drain_timeout`), then close."""
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=self.drain_timeout)
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        if self._saga_timeouts is not None:
            await self._saga_timeouts.stop()
            self._saga_timeouts = None
        if self._relay is not None:
            await self._relay.stop()
            self._relay = None
        if self._store is not None:
            await self._store.close()
            self._store = None
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
        if self._endpoint is not None:
            self._endpoint.close()
            await self._endpoint.wait_closed()
            self._endpoint = None
        log.info("service %s stopped: %s", self.name, dict(self.stats))

    async def run(self) -> None:
        """Run until SIGTERM or SIGINT, then drain and return (the process exits 0)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await self.start()
        try:
            waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
            if self._consumer is not None:
                waiters.append(self._consumer)
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if self._consumer is not None and self._consumer.done() and not self._consumer.cancelled():
                self._consumer.result()  # the consumer died: surface why, after stopping cleanly below
        finally:
            waiters[0].cancel()
            await self.stop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- publishing outside handlers -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Context]:
        """A unit of work outside any handler (an HTTP request): rows and events commit together.

        Refused inside this service's own handlers (`NestedUnitOfWork`): there `ctx` is the unit
        of work, and a second one would commit apart from it.
        """
        if _handling.get() is self:
            raise NestedUnitOfWork(
                f"a handler of service {self.name!r} called service.transaction() or service.publish(); "
                "publish follow-up events with ctx.publish(...) so they commit with the handler's work"
            )
        if self._store is None:
            context = Context(self.name)
            yield context
            await self._publish_now(context.outgoing)
            return
        from tidings.store import outbox

        async with self._store.session() as session, session.begin():
            context = Context(self.name, session=session)
            yield context
            await outbox.add(session, context.outgoing)
        self._wake_relay(context.outgoing)

    async def publish(self, *events: Event) -> list[Envelope]:
        """Publish events in their own unit of work; returns their envelopes."""
        async with self.transaction() as context:
            for event in events:
                context.publish(event)
        return context.outgoing

    # -- consuming -------------------------------------------------------------------------------

    async def _consume(self, subscription: Subscription) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        deliveries = aiter(subscription)
        while True:
            await slots.acquire()
            try:
                delivery = await anext(deliveries)
            except StopAsyncIteration:
                slots.release()
                return
            task = asyncio.create_task(self._process(delivery))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _process(self, delivery: Delivery) -> None:
        try:
            try:
                envelope, event = self._decode(delivery)
            except MalformedMessage as malformed:
                with tracing.processing(None, delivery.attempt, self.group, self.telemetry.system) as span:
                    span.outcome("dead_lettered", malformed)
                    await self._dead_letter(delivery, str(malformed))
                self.telemetry.metrics.record_delivery(MALFORMED, "dead_lettered")
                return
            with tracing.processing(envelope, delivery.attempt, self.group, self.telemetry.system) as span:
                started = time.perf_counter()
                failed: Exception | None = None
                try:
                    duplicate = await self._handle(envelope, event, delivery.attempt)
                except Exception as error:
                    failed = error
                elapsed = time.perf_counter() - started
                if failed is None:
                    await delivery.ack()
                    outcome = "duplicate" if duplicate else "handled"
                    self.stats["duplicates" if duplicate else "handled"] += 1
                else:
                    outcome = await self._failed(delivery, envelope, failed)
                span.outcome(outcome, failed)
                self.telemetry.metrics.record_delivery(envelope.type, outcome, elapsed)
        except Exception:
            # Settling failed (broker gone): the delivery returns after its lease; keep consuming.
            log.exception("%s could not settle a delivery; it will be redelivered", self.name)

    def _decode(self, delivery: Delivery) -> tuple[Envelope, Event]:
        envelope = delivery.envelope()
        if envelope.type not in self._handlers:
            raise MalformedMessage(
                Malformation.UNKNOWN_TYPE, f"service {self.name!r} has no handler for {envelope.type!r}"
            )
        return envelope, self.registry.decode(envelope.type, envelope.version, envelope.data)

    async def _handle(self, envelope: Envelope, event: Event, attempt: int) -> bool:
        """Run the handler in one unit of work; True when the event had already been handled."""
        handler = self._handlers[envelope.type]
        _handling.set(self)  # this task runs one delivery: nothing to reset
        if self._store is None:
            context = Context(self.name, incoming=envelope, attempt=attempt)
            await handler(event, context)
            await self._publish_now(context.outgoing)
            return False
        from tidings.store import inbox, outbox

        async with self._store.session() as session, session.begin():
            if not await inbox.claim(session, self.group, envelope.id):
                return True
            context = Context(self.name, incoming=envelope, attempt=attempt, session=session)
            await handler(event, context)
            await outbox.add(session, context.outgoing)
        self._wake_relay(context.outgoing)
        return False

    async def _failed(self, delivery: Delivery, envelope: Envelope, error: Exception) -> str:
        """Retry or dead-letter a delivery whose handler raised; returns which."""
        attempt = delivery.attempt
        if self.retry.should_retry(error, attempt):
            delay = self.retry.delay(attempt)
            log.warning(
                "%s: %s %s failed (attempt %d), retrying in %.2fs: %r",
                self.name,
                envelope.type,
                envelope.id,
                attempt,
                delay,
                error,
            )
            await delivery.retry(delay)
            self.stats["retried"] += 1
            return "retried"
        if isinstance(error, PermanentError):
            reason = f"{type(error).__name__}: {error}"
        else:
            reason = f"gave up after {attempt} attempts: {type(error).__name__}: {error}"
        await self._dead_letter(delivery, reason)
        return "dead_lettered"

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        log.error("%s dead-lettered a delivery: %s", self.name, reason)
        await delivery.dead_letter(reason)
        self.stats["dead_lettered"] += 1

    async def _publish_now(self, envelopes: list[Envelope]) -> None:
        """Without a database: publish straight away (no outbox, no relay)."""
        if envelopes:
            with self.telemetry.sending(envelopes):
                await self.transport.publish(envelopes)
            self.stats["published"] += len(envelopes)

    # -- observability ---------------------------------------------------------------------------

    @property
    def metrics(self) -> ServiceMetrics:
        return self.telemetry.metrics

    async def scrape(self) -> str:
        """The Prometheus text of this service, with its outbox backlog and its group's lag.

        A gauge whose source cannot be read (database or broker down) is left out, so the
        counters still reach the scraper.
        """
        pending: int | None = None
        backlog: dict[str, int] | None = None
        if self._store is not None:
            from tidings.store import outbox

            try:
                async with self._store.session() as session, session.begin():
                    pending = await outbox.pending_count(session, self.name)
            except Exception as error:
                log.warning("%s: outbox backlog unavailable for /metrics: %r", self.name, error)
        if self._transport is not None and self._handlers:
            try:
                lag = await self._transport.backlog()
                backlog = {self.group: lag.get(self.group, 0)}
            except Exception as error:
                log.warning("%s: consumer backlog unavailable for /metrics: %r", self.name, error)
        return self.metrics.render(outbox_pending=pending, backlog=backlog)

    def health(self) -> dict[str, object]:
        """What `GET /health` answers: up once started, with the counters so far."""
        return {
            "service": self.name,
            "status": "up" if self._transport is not None else "starting",
            "stats": dict(self.stats),
        }

    def _wake_relay(self, outgoing: list[Envelope]) -> None:
        if outgoing and self._relay is not None:
            self._relay.wake()
            self.stats["outboxed"] += len(outgoing)  # the relay counts what it actually publishes


def _redact(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
