"""Fixtures of the relay's unit tests: an in-process broker and a SQLite service database, fresh per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.store import Store
from tidings.transport.base import Transport, connect


@pytest.fixture
async def broker() -> AsyncIterator[Transport]:
    transport = await connect(f"memory://relay-{uuid.uuid4().hex}")
    try:
        yield transport
    finally:
        await transport.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path / 'service.db'}")
    try:
        yield opened
    finally:
        await opened.close()
