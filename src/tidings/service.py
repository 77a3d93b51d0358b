"""`Service`: the public face of a service — its handlers, its hooks (business tables, startup and
shutdown hooks, components, supervised background tasks: declared, never subclassed) and start/stop —
composed from `tidings.runtime` (docs/architecture.md follows one delivery through it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import MetaData

from tidings import saga
from tidings.context import Context, service_source
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.events import Event, Registry
from tidings.observe import ServiceMetrics, Telemetry
from tidings.retry import RetryPolicy
from tidings.runtime import activity, chain, health, readiness
from tidings.runtime.consumer import Consumer
from tidings.runtime.hooks import Component, Hooks
from tidings.runtime.pipeline import HANDOVER
from tidings.runtime.routing import Routes
from tidings.runtime.signals import run_until_stopped
from tidings.runtime.supervisor import BackgroundTaskFailed, CrashPolicy, Restart, Stop, Supervisor
from tidings.runtime.unit_of_work import UnitOfWork
from tidings.security.signing import Signing
from tidings.store import Store
from tidings.store.relay import Relay
from tidings.store.retention import InboxRetention
from tidings.transport.base import Transport, connect
from tidings.transport.urls import redact

__all__ = ["BackgroundTaskFailed", "Component", "Restart", "Service", "Stop"]

log = logging.getLogger("tidings.service")

E = TypeVar("E", bound=Event)
S = TypeVar("S", bound=saga.Saga)
Handler = Callable[[E, Context], Awaitable[None]]
Hook = Callable[["Service"], Awaitable[None]]
DEFAULT_BROKER = "sqlite:///tidings-broker.db"


class Service:
    """A named service: its handlers, its broker, its own database, and how it runs.

    `Service("inventory", broker="sqlite:///data/broker.db", database="sqlite+aiosqlite:///data/inventory.db")`.
    The service consumes as the consumer group named after it, so replicas of one service share
    the work and every other service gets its own copy of each event. `tables` (SQLAlchemy
    metadata) are created, if missing, after Tidings' own migrations. `source`: the URI its events carry.
    """

    def __init__(
        self,
        name: str,
        *,
        broker: str = DEFAULT_BROKER,
        database: str | None = None,
        tables: MetaData | None = None,
        registry: Registry | None = None,
        concurrency: int = 16,
        retry: RetryPolicy | None = None,
        handover: RetryPolicy | None = None,
        drain_timeout: float = 30.0,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        signing: Signing | None = None,
        source: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        self.name = self.group = name
        self.source = service_source(name, source)  # on the wire; the store's owner key is `name`
        self.broker_url = broker
        self.database_url, self.tables = database, tables
        self.registry = registry or Registry()
        self.concurrency, self.retry = concurrency, retry or RetryPolicy()
        self.handover = handover or HANDOVER  # how long what only other members know is given back
        self.drain_timeout, self.signing = drain_timeout, signing  # signing: tidings.security.Signing
        self.metrics_port, self.metrics_host = metrics_port, metrics_host
        self.stats: Counter[str] = Counter()
        self.telemetry = Telemetry(name, broker)
        self.published_types: list[str] = []  # what `publishes` declared: documents, broker permissions
        self.connector: Callable[[str], Awaitable[Transport]] = connect  # the test kit wraps it (faults)
        self.supervisor = Supervisor(name)
        self.routes = Routes(name, self.registry)
        self._sagas: dict[str, type[saga.Saga]] = {}
        self.hooks: Hooks[Service] = Hooks()
        self._transport: Transport | None = None
        self._store: Store | None = None
        self._unit: UnitOfWork | None = None
        self._relay: Relay | None = None
        self._consumer: Consumer | None = None
        self._endpoint: asyncio.Server | None = None
        self._phase = "starting"

    def on(self, event_class: type[E]) -> Callable[[Handler[E]], Handler[E]]:
        """Register the decorated coroutine as this service's handler of `event_class`."""

        def decorate(handler: Handler[E]) -> Handler[E]:
            self.routes.add(event_class, handler)
            return handler

        return decorate

    def publishes(self, *event_classes: type[Event]) -> None:
        """Declare the event types this service publishes: its AsyncAPI document, its broker identity."""
        for event_class in event_classes:
            self.registry.register(event_class)
            if event_class.event_type not in self.published_types:
                self.published_types.append(event_class.event_type)

    @property
    def handled_types(self) -> list[str]:
        """The event types this service has handlers for (sagas' steps included)."""
        return self.routes.types

    def saga(self, saga_class: type[S]) -> type[S]:
        """Run `saga_class` in this service (usable as a class decorator); see `tidings.saga`."""
        if saga_class.saga_name in self._sagas:
            raise ConfigurationError(f"{self.name} already runs a saga named {saga_class.saga_name!r}")
        if self.database_url is None:
            raise ConfigurationError(f"saga {saga_class.saga_name!r} keeps its state in the service's database")
        for event_class, handler in saga.steps(self.registry, saga_class):
            self.routes.add(event_class, handler)
        self._sagas[saga_class.saga_name] = saga_class
        return saga_class

    def on_startup(self, hook: Hook) -> Hook:
        """Run `await hook(service)` at start, once the database is ready, before anything consumes."""
        self.hooks.startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run `await hook(service)` at stop, after the drain, before the database closes."""
        self.hooks.shutdown.append(hook)
        return hook

    def component(self, factory: Callable[[Service], Component]) -> None:
        """Start `factory(service)` once the service consumes; stopped first, before the drain."""
        self.hooks.components.append(factory)

    def background(self, name: str, run: Callable[[], Awaitable[None]], *, on_crash: CrashPolicy | None = None) -> None:
        """Run `run()` under the service's supervisor while it runs (default: `Restart()`)."""
        self.hooks.background.append((name, run, on_crash or Restart()))

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise ConfigurationError(f"service {self.name!r} is not started: use `async with service:`")
        return self._transport

    @property
    def store(self) -> Store:
        if self._store is None:
            raise ConfigurationError(f"service {self.name!r} has no database or is not started")
        return self._store

    @property
    def relay(self) -> Relay | None:
        """The outbox relay of a started service with a database."""
        return self._relay

    @property
    def metrics(self) -> ServiceMetrics:
        return self.telemetry.metrics

    async def start(self) -> None:
        """Connect, migrate, run the startup hooks, start the supervised tasks and the components;
        if a step fails, what was already opened is closed again before the error propagates."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._transport = await self.connector(self.broker_url)
        if self.database_url is not None:
            # A connection per handler plus the relay's: an overflow one closes when returned (reconnects per event).
            self._store = await Store.open(self.database_url, pool_size=self.concurrency + 2, metadata=self.tables)
        self._unit = UnitOfWork(
            self.name, self._store, self.source, publish=self._send, committed=self._committed, signing=self.signing
        )
        await self.hooks.run_startup(self)
        if self._store is not None:
            self._start_store_tasks(self._store, self._unit)
        if self.routes:
            subscription = await self.transport.subscribe(self.group, self.routes.types, prefetch=self.concurrency * 2)
            shared = not self.transport.capabilities.member_types
            pipeline = chain.pipeline(self, self._unit, members_share_types=shared)
            self._consumer = Consumer(subscription, pipeline.process, concurrency=self.concurrency)
            self.supervisor.start("consumer", self._consumer.run, on_crash=Stop())
        self.supervisor.start("activity-log", activity.reporter(self.name, self.stats), on_crash=Restart())
        for name, run, policy in self.hooks.background:
            self.supervisor.start(name, run, on_crash=policy)
        if self.metrics_port is not None:  # the port really bound, if 0 was asked
            self._endpoint, self.metrics_port = await health.serve_endpoint(self, self.metrics_host, self.metrics_port)
        await self.hooks.start_components(self)
        self._phase = "running"
        log.info("service %s started on %s handling %s", self.name, redact(self.broker_url), self.routes.types)

    def _start_store_tasks(self, store: Store, unit: UnitOfWork) -> None:
        self._relay = Relay(store, self.transport, source=self.name, telemetry=self.telemetry)
        self.supervisor.start("relay", self._relay.run, on_crash=Restart(), on_stop=self._relay.request_stop)
        self.supervisor.start("inbox-retention", InboxRetention(store).run, on_crash=Restart())
        if self._sagas:
            sweeper = saga.TimeoutSweeper(self.name, store, unit.transaction, self.registry, self._sagas)
            self.supervisor.start("saga-timeouts", sweeper.run, on_crash=Restart())

    async def stop(self) -> None:
        """Stop the components, stop taking deliveries, let in-flight ones finish (up to
        `drain_timeout`), stop the background tasks (the relay after its batch), then close."""
        self._phase = "stopping"
        await self.hooks.stop_components()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await self.supervisor.stop("consumer")
            await consumer.drain(self.drain_timeout)
            await consumer.subscription.close()
        await self.supervisor.stop_all(grace=self.drain_timeout)
        if self._relay is not None:
            await self._relay.close()
            self._relay = None
        if self._transport is not None:  # started (maybe partly): the hooks may expect the database
            await self.hooks.run_shutdown(self)
        await self._close()
        self._phase = "stopped"
        log.info("service %s stopped: %s", self.name, dict(self.stats))

    async def _close(self) -> None:
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

    async def run(self, *, freeze_heap: bool = True) -> None:
        """Run until SIGTERM or SIGINT, then drain and return; a background task dying under `Stop` (the consumer,
        by default) raises `BackgroundTaskFailed`, whose `exit_code` `tidings run` exits with. Once started it freezes
        the heap: full collections skip what lives as long as the process (ADR 0038), unless `freeze_heap=False`."""
        await run_until_stopped(self.start, self.stop, self.supervisor, freeze_heap=freeze_heap)

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Context]:
        """A unit of work outside any handler (an HTTP request): rows and events commit together;
        refused (`NestedUnitOfWork`) inside this service's own handlers, whose `ctx` is one already."""
        if self._unit is None:
            raise ConfigurationError(f"service {self.name!r} is not started: use `async with service:`")
        async with self._unit.transaction() as context:
            yield context

    async def publish(self, *events: Event) -> list[Envelope]:
        """Publish events in their own unit of work; returns their envelopes."""
        async with self.transaction() as context:
            for event in events:
                context.publish(event)
        return context.outgoing

    async def _send(self, envelopes: list[Envelope]) -> None:
        """Without a database: publish straight away (no outbox, no relay)."""
        with self.telemetry.sending(envelopes):
            await self.transport.publish(envelopes)
        self.stats["published"] += len(envelopes)

    def _committed(self, outgoing: list[Envelope]) -> None:
        if self._relay is not None:
            self._relay.wake()
        self.stats["outboxed"] += len(outgoing)  # the relay counts what it actually publishes

    async def scrape(self) -> str:
        """The Prometheus text of this service (`GET /metrics`); see `tidings.runtime.health.scrape`."""
        group = self.group if self.routes else None
        return await health.scrape(self.metrics, self.name, self._store, self._transport, group, self.supervisor)

    def health(self) -> dict[str, object]:
        """What `GET /health` answers; see `tidings.runtime.health.report`."""
        return health.report(self.name, phase=self._phase, supervisor=self.supervisor, stats=dict(self.stats))

    async def ready(self) -> dict[str, Any]:
        """What `GET /health/ready` answers; see `tidings.runtime.readiness.check`."""
        return await readiness.check(self.name, self._phase, self.supervisor, self._store, self._transport)
