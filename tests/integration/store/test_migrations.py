"""`Store.open` applies Tidings' migrations: idempotent, beside the service's own Alembic
history, matching `tidings.store.tables`, and safe when several processes start at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from tests.integration.store.shop import effects, metadata
from tidings.envelope import Envelope
from tidings.events import Event
from tidings.store import Store, inbox, outbox
from tidings.store.migrate import VERSION_TABLE, alembic_config
from tidings.store.tables import metadata as tidings_metadata

HEAD = "0005"
"""The newest revision in tidings/store/migrations/versions."""


class Effect(Event, type="test.migrations.effect", version=1):
    n: int


async def _version(store: Store) -> list[str]:
    async with store.engine.connect() as connection:
        return list((await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).scalars())


async def test_open_migrates_to_head_once(database_url: str) -> None:
    for _ in range(2):
        store = await Store.open(database_url)
        try:
            assert await _version(store) == [HEAD]
        finally:
            await store.close()


async def test_a_database_of_an_older_tidings_is_brought_to_head(database_url: str) -> None:
    """A service database made by a release with only 0001 gains the saga table on open."""
    store = await Store.open(database_url, migrate=False)
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0001"))
        assert await _version(store) == ["0001"]
        await store.migrate()
        assert await _version(store) == [HEAD]
        async with store.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert {"tidings_outbox", "tidings_inbox", "tidings_relay", "tidings_sagas"} <= set(tables)
    finally:
        await store.close()


async def test_claims_made_before_0004_survive_it_and_are_honoured(database_url: str) -> None:
    """0004 rebuilds the inbox's key (SQLite: a new table): earlier claims keep their meaning."""
    store = await Store.open(database_url, migrate=False)
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0003"))
            await connection.execute(
                text("INSERT INTO tidings_inbox (consumer_group, event_id, claimed_at) VALUES ('orders', 'e-1', 1.5)")
            )
        await store.migrate()
        async with store.session() as session, session.begin():
            rows = (
                await session.execute(text("SELECT consumer_group, source, event_id, claimed_at FROM tidings_inbox"))
            ).all()
            assert [tuple(row) for row in rows] == [("orders", "", "e-1", 1.5)]
            assert not await inbox.claim(session, "orders", "billing", "e-1")
            assert await inbox.claim(session, "orders", "billing", "e" * 200)
            long_id = Envelope.wrap(Effect(n=1), source="orders").with_changes(id="o" * 200)
            await outbox.add(session, [long_id])  # the outbox holds what the envelope allows, too
    finally:
        await store.close()


async def test_the_migrated_schema_is_the_one_the_code_uses(store: Store) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "include_name": lambda name, kind, _: kind != "table" or name.startswith("tidings_"),
            },
        )
        return list(compare_metadata(context, tidings_metadata))

    async with store.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


async def test_a_services_own_alembic_history_is_left_alone(database_url: str) -> None:
    store = await Store.open(database_url, migrate=False)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            await connection.execute(text("INSERT INTO alembic_version VALUES ('mine_42')"))
        await store.migrate()
        async with store.engine.connect() as connection:
            assert (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar() == "mine_42"
        assert await _version(store) == [HEAD]
    finally:
        await store.close()


async def test_metadata_creates_the_services_tables(database_url: str) -> None:
    for _ in range(2):  # the second time finds them
        store = await Store.open(database_url, metadata=metadata)
        try:
            async with store.engine.connect() as connection:
                tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            assert effects.name in tables
            assert {"tidings_outbox", "tidings_inbox", "tidings_relay", VERSION_TABLE} <= set(tables)
        finally:
            await store.close()


async def test_processes_starting_at_once_migrate_safely(database_url: str) -> None:
    script = (
        "import asyncio, sys\n"
        "from tidings.store import Store\n"
        "async def main():\n"
        "    store = await Store.open(sys.argv[1])\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, database_url, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    results = await asyncio.gather(*(process.communicate() for process in processes))
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr.decode()
    store = await Store.open(database_url, migrate=False)
    try:
        assert await _version(store) == [HEAD]
    finally:
        await store.close()
