"""`outbox_status`: backlog, oldest unsent age and published count per source."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.store.shop import JobDone
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.store import Store, outbox, outbox_status
from tidings.store.relay import Relay
from tidings.transport.base import connect

TIDINGS = str(Path(sys.executable).with_name("tidings"))


async def test_an_unused_database_reports_nothing_pending(store: Store) -> None:
    status = await outbox_status(store.engine.url)
    assert (status.pending, status.oldest_pending_age, status.published, status.sources) == (0, None, 0, ())


async def test_backlog_age_and_published_count_per_source(store: Store) -> None:
    async with store.session() as session, session.begin():
        await outbox.add(session, [Envelope.wrap(JobDone(n=n), source="orders") for n in range(3)])
        await outbox.add(session, [Envelope.wrap(JobDone(n=9), source="payments")])
    await asyncio.sleep(0.2)  # sleep-ok: the rows must be measurably old
    transport = await connect("memory://status-test")
    relay = Relay(store, transport, source="payments")
    assert await relay.run_once() == 1
    status = await outbox_status(store.engine.url)
    assert status.pending == 3
    assert status.published == 1
    assert status.oldest_pending_age is not None
    assert 0.2 <= status.oldest_pending_age < 10
    orders, payments = status.sources
    assert (orders.source, orders.pending, orders.published) == ("orders", 3, 0)
    assert (payments.source, payments.pending, payments.oldest_pending_age, payments.published) == (
        "payments",
        0,
        None,
        1,
    )
    assert payments.relay_owner == relay.owner
    assert payments.last_published_age is not None
    assert 0 <= payments.last_published_age < 10  # published just now
    await transport.close()


async def test_a_database_without_tidings_tables_is_an_error(tmp_path: Path) -> None:
    empty = await Store.open(f"sqlite:///{tmp_path / 'empty.db'}", migrate=False)
    await empty.run_sync(lambda connection: None)  # creates the file, no tables
    await empty.close()
    with pytest.raises(ConfigurationError, match="no Tidings outbox"):
        await outbox_status(f"sqlite:///{tmp_path / 'empty.db'}")


async def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no SQLite database"):
        await outbox_status(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


async def test_the_cli_reports_the_outbox_status_per_source(store: Store, tmp_path: Path) -> None:
    """`tidings outbox status` as a child process on the service's database (SQLite and PostgreSQL):
    the same figures as `outbox_status`, as JSON and as a table."""
    async with store.session() as session, session.begin():
        await outbox.add(session, [Envelope.wrap(JobDone(n=n), source="orders") for n in range(2)])
        await outbox.add(session, [Envelope.wrap(JobDone(n=n), source="payments") for n in range(3)])
    transport = await connect(f"sqlite:///{tmp_path / 'broker.db'}")
    relay = Relay(store, transport, source="payments")
    assert await relay.run_once() == 3
    await transport.close()
    database = store.engine.url.render_as_string(hide_password=False)

    shown = await _tidings("outbox", "status", "--database", database, "--json")
    orders, payments = json.loads(shown)
    assert (orders["source"], orders["pending"], orders["parked"], orders["published"]) == ("orders", 2, 0, 0)
    assert 0 <= orders["oldest_pending_age"] < 60
    assert (payments["source"], payments["pending"], payments["published"]) == ("payments", 0, 3)
    assert payments["oldest_pending_age"] is None
    assert payments["relay_owner"] == relay.owner
    assert 0 <= payments["last_published_age"] < 60
    table = await _tidings("outbox", "status", "--database", database)
    assert "outbox: 2 pending, 0 parked, 3 published" in table


async def _tidings(*argv: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run, [TIDINGS, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
