"""The recorder: a `Service` that writes every event it receives to its own database.

It consumes as the group `tidings-dashboard`, so the broker keeps what it missed while it was
down, and its inbox keeps one row per event id however often the broker redelivers.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text, insert

from tidings.context import Context
from tidings.errors import ConfigurationError
from tidings.events import Event, Registry
from tidings.service import Service

GROUP = "tidings-dashboard"

metadata = MetaData()
events = Table(
    "tidings_dashboard_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("type", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", String(255), nullable=False),
    Column("subject", String(255)),
    Column("correlation", String(64)),
    Column("causation", String(64)),
    Column("time", String(40)),  # the event's own time attribute (RFC 3339), as its publisher set it
    Column("recorded_at", Float, nullable=False),
    Column("data", Text, nullable=False),
    Index("tidings_dashboard_events_correlation", "correlation", "seq"),
    Index("tidings_dashboard_events_subject", "subject"),
    Index("tidings_dashboard_events_recorded", "recorded_at"),
)
replays = Table(
    "tidings_dashboard_replays",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("group_name", String(255), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("reason", Text),  # why it had been dead-lettered, as the broker said
    Column("attempts", Integer),
    Column("action", String(16), nullable=False),  # "replayed" or "purged"
    Column("at", Float, nullable=False),
    Index("tidings_dashboard_replays_event", "event_id"),
)
"""What an operator did to dead letters from the dashboard: the journey still shows it once the
dead letter itself is gone."""


def event_classes(source: Registry | ModuleType | str | Iterable[type[Event]]) -> list[type[Event]]:
    """The concrete event classes of a registry, a module (or its dotted name), or an iterable."""
    if isinstance(source, str):
        try:
            source = importlib.import_module(source)
        except ImportError as error:
            raise ConfigurationError(f"cannot import the events module {source!r}: {error}") from None
    if isinstance(source, Registry):
        found: Iterable[Any] = (source.event_class(name) for name in source.types())
    elif isinstance(source, ModuleType):
        found = (member for _, member in inspect.getmembers(source, inspect.isclass))
    else:
        found = source
    classes = {cls.event_type: cls for cls in found if _is_event(cls)}
    if not classes:
        raise ConfigurationError(f"no event classes with a type found in {source!r}")
    return [classes[name] for name in sorted(classes)]


def _is_event(candidate: Any) -> bool:
    return inspect.isclass(candidate) and issubclass(candidate, Event) and "event_type" in vars(candidate)


def record_events(service: Service, events: Registry | ModuleType | str | Iterable[type[Event]]) -> list[str]:
    """Make `service` record every event of these classes in the `tidings_dashboard_events` table; returns their types.

    The service's database needs the table: open its `Store` with `metadata=recorder.metadata`
    first (`Recorder` does), or pass that metadata to whatever prepares the database.
    """
    classes = event_classes(events)
    for cls in classes:
        service.on(cls)(_record)
    return [cls.event_type for cls in classes]


class Recorder(Service):
    """The observer service; `Recorder(broker=..., database=..., events=services.contracts)`."""

    def __init__(
        self,
        *,
        broker: str,
        database: str,
        events: Registry | ModuleType | str | Iterable[type[Event]],
        name: str = GROUP,
        **options: Any,
    ) -> None:
        super().__init__(name, broker=broker, database=database, tables=metadata, **options)
        self.recorded_types = record_events(self, events)


async def _record(event: Event, ctx: Context) -> None:
    envelope = ctx.incoming
    assert envelope is not None  # handlers always get the incoming envelope
    await ctx.connection.execute(
        insert(events),
        {
            "event_id": envelope.id,
            "type": envelope.type,
            "version": envelope.version,
            "source": envelope.source,
            "subject": envelope.subject,
            "correlation": envelope.correlationid,
            "causation": envelope.causationid,
            "time": envelope.time.isoformat() if envelope.time is not None else None,
            "recorded_at": time.time(),
            "data": envelope.data.decode(),
        },
    )
