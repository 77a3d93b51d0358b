"""`/health/ready`: whether a service can do its work now, with the reason for each check.

A service is ready when it runs (not starting or stopping), its database answers, its schema is
at the migrations' head, its broker answers, and its supervisor runs every background task (relay
and consumer included). Each check gets `CHECK_TIMEOUT` seconds, so a probe gets its answer in a
few seconds even when a server hangs instead of refusing. Liveness (`/health/live`) is simpler:
the process answers, so its event loop turns.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import text

from tidings.runtime.supervisor import Supervisor
from tidings.store import Store
from tidings.store.migrate import VERSION_TABLE, alembic_config
from tidings.transport.base import Transport

CHECK_TIMEOUT = 1.0
"""Seconds each check may take before it counts as failed."""


@functools.cache
def migrations_head() -> str | None:
    """The newest revision of Tidings' migrations."""
    head: str | None = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head


async def check(
    owner: str, phase: str, supervisor: Supervisor, store: Store | None, transport: Transport | None
) -> dict[str, Any]:
    """`{"service", "status": "ready"|"unready", "checks": {name: {"ok", "reason"}}, "tasks"}`."""
    checks: dict[str, dict[str, Any]] = {"running": _result(phase == "running", f"the service is {phase}")}
    if store is not None:
        checks["database"], checks["migrations"] = await _database(store)
    checks["broker"] = await _broker(transport)
    tasks = supervisor.health()
    stalled = {name: state for name, state in tasks.items() if state != "running"}
    reason = "; ".join(f"{name} is {state}" for name, state in stalled.items()) or f"{len(tasks)} tasks run"
    checks["tasks"] = _result(not stalled and bool(tasks), reason if tasks else "no background task runs")
    ready = all(result["ok"] for result in checks.values())
    return {"service": owner, "status": "ready" if ready else "unready", "checks": checks, "tasks": tasks}


async def _database(store: Store) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), store.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            version = (await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).scalar()
    except Exception as error:
        failed = _result(False, f"the database does not answer: {_why(error)}")
        return failed, _result(False, "unknown: the database does not answer")
    head = migrations_head()
    migrated = _result(version == head, f"schema at {version}, migrations' head {head}")
    return _result(True, "the database answers"), migrated


async def _broker(transport: Transport | None) -> dict[str, Any]:
    if transport is None:
        return _result(False, "not connected to a broker")
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await transport.ping()
    except Exception as error:
        return _result(False, f"the broker does not answer: {_why(error)}")
    return _result(True, "the broker answers")


def _result(ok: bool, reason: str) -> dict[str, Any]:
    return {"ok": ok, "reason": reason}


def _why(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:g}s"
    return f"{type(error).__name__}: {error}"[:300]
