"""`tidings new service NAME`: write a runnable service package a newcomer can change and test.

The package consumes one event type (`--consumes`, default the shop's `shop.order.confirmed`)
as a tolerant reader (it declares only the fields it uses and ignores the rest), keeps one row
per event in its own database (the inbox makes redeliveries harmless), reads its settings from
the environment with pydantic-settings, and comes with a test that uses the test kit under
duplicated and redelivered events. `tidings run NAME.service:service` starts it.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from tidings.errors import ConfigurationError

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

FILES: dict[str, str] = {
    "__init__.py": '''"""The {name} service, made by `tidings new service`."""
''',
    "events.py": '''"""The events {name} reads, with only the fields it needs: a tolerant reader."""

from pydantic import ConfigDict

from tidings import Event


class {event_class}(Event, type="{event_type}", version=1):
    model_config = ConfigDict(frozen=True, extra="ignore")

    order_id: str

    def subject(self) -> str:
        return self.order_id
''',
    "settings.py": '''"""{name}'s settings, from the environment ({prefix}BROKER, {prefix}DATABASE) or a .env file."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="{prefix}", env_file=".env", extra="ignore")

    broker: str = "sqlite:///data/broker.db"
    database: str = "sqlite:///data/{name}.db"
    concurrency: int = 8
''',
    "models.py": '''"""{name}'s own tables, created with Tidings' tables when the service starts."""

from sqlalchemy import Column, Float, MetaData, String, Table

metadata = MetaData()
seen = Table(
    "{name}_seen",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("seen_at", Float, nullable=False),
)
''',
    "service.py": '''"""The {name} service: a row per `{event_type}` (`tidings run {name}.service:service`)."""

import time

from tidings.context import Context
from tidings.service import Service

from {name}.events import {event_class}
from {name}.models import metadata, seen
from {name}.settings import Settings


def build(settings: Settings) -> Service:
    service = Service(
        "{name}",
        broker=settings.broker,
        database=settings.database,
        tables=metadata,
        concurrency=settings.concurrency,
    )

    @service.on({event_class})
    async def remember(event: {event_class}, ctx: Context) -> None:
        await ctx.session.execute(seen.insert().values(order_id=event.order_id, seen_at=time.time()))

    return service


service = build(Settings())
''',
    "tests/__init__.py": "",
    "tests/test_service.py": '''"""{name} under faults: every event twice, and a redelivery after success."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from tidings.testing import Faults, Harness

from {name}.events import {event_class}
from {name}.models import seen
from {name}.service import build
from {name}.settings import Settings


@pytest.mark.asyncio
async def test_each_order_is_remembered_once(tmp_path: Path) -> None:
    service = build(Settings(database=f"sqlite:///{{tmp_path}}/{name}.db"))
    async with Harness(service, faults=Faults(duplicate=True, redeliver_after_success=True)) as harness:
        await harness.send({event_class}(order_id="o-1"), {event_class}(order_id="o-2"))
        await harness.until(lambda: service.stats["handled"] >= 2, "both orders handled")
        await harness.settled()
        async with service.store.session() as session:
            rows = await session.scalar(select(func.count()).select_from(seen))
    assert rows == 2
''',
}


def new_service(name: str, directory: Path, *, consumes: str = "shop.order.confirmed") -> list[Path]:
    """Write the package `name` under `directory`; returns the files written. Refuses to overwrite."""
    if not NAME.match(name) or keyword.iskeyword(name):
        raise ConfigurationError(f"{name!r} is not a service name: use lower case letters, digits and _")
    target = directory / name
    if target.exists():
        raise ConfigurationError(f"{target} exists already; choose another name or directory")
    if not directory.is_dir():
        raise ConfigurationError(f"the folder {directory} does not exist")
    words = [part for part in re.split(r"[._-]", consumes) if part]
    values = {
        "name": name,
        "prefix": f"{name.upper()}_",
        "event_type": consumes,
        "event_class": "".join(word.capitalize() for word in words[-2:]) or "Received",
    }
    written = []
    for relative, template in FILES.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values))
        written.append(path)
    return written
