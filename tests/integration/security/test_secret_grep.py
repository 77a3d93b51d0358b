"""The whole shop with per-service identities and signed events, then a search for its secrets:
no password or private key appears in any log, error text or dead-letter header."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.contracts.events import PaymentCompleted
from services.provision import provision
from services.settings import SERVICES, Settings
from tests.integration.security.private_rabbit import SecureRabbit
from tests.integration.security.test_signed_events import _publish_raw
from tests.system.harness import POSTGRES, Shop, check, load
from tidings.envelope import Envelope
from tidings.errors import TidingsError
from tidings.security import identities
from tidings.store import Store
from tidings.transport.base import connect

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
async def db_prefix() -> AsyncIterator[str]:
    prefix = f"sec{uuid.uuid4().hex[:6]}_"
    yield prefix
    engine = create_async_engine(f"{POSTGRES}/postgres".replace("postgresql", "postgresql+asyncpg"))
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            for service in SERVICES:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{prefix}{service}" WITH (FORCE)'))
                await connection.execute(text(f'DROP ROLE IF EXISTS "{prefix}{service}"'))
    finally:
        await engine.dispose()


def _secrets(credentials: Path, keys: Path) -> set[str]:
    found = {identity.password for identity in identities.load(credentials).values()}
    for path in keys.glob("*.json"):
        for key in json.loads(path.read_text()):
            found.update(value for name, value in key.items() if name in ("private", "secret"))
    return found


async def _error_texts(settings: Settings) -> list[str]:
    """Errors a service meets with its own credentials in its URLs: each must come out redacted."""
    texts = []
    broker = settings.service_broker_url("orders").replace(":5690/", ":1/") + "?connect_timeout=0"
    database = settings.database_url("orders").replace("@127.0.0.1:5432/", "@127.0.0.1:1/")
    for attempt in (connect(broker), connect(broker.replace("amqp://", "bogus://")), Store.open(database)):
        try:
            await attempt
        except (TidingsError, OSError) as error:
            texts.append(f"{type(error).__name__}: {error}")
        else:  # pragma: no cover - a port 1 that answers
            raise AssertionError("connected to port 1")
    return texts


async def test_a_whole_shop_run_prints_no_secret(secure_rabbit: SecureRabbit, tmp_path: Path, db_prefix: str) -> None:
    vhost = f"grep-{uuid.uuid4().hex[:6]}"
    secret_dir = tmp_path / "secrets"
    settings = Settings(
        data_dir=tmp_path / "data",
        api_port=0,
        broker=secure_rabbit.admin_url(vhost),
        database=POSTGRES,
        db_prefix=db_prefix,
        identities=secret_dir / "identities.json",
        keys=secret_dir / "keys",
    )
    await provision(settings, secret_dir / "identities.json", prefix=db_prefix, keys=secret_dir / "keys")
    secrets = _secrets(secret_dir / "identities.json", secret_dir / "keys")
    assert len(secrets) == 2 * len(SERVICES)  # a password and a private key each
    with Shop(settings) as shop:
        await asyncio.to_thread(load, settings, shop.api, 20, 40)
        result = await asyncio.to_thread(check, settings)
        assert result.returncode == 0, result.stdout + result.stderr
        # a forgery from a process with the broker's admin password: dead-lettered by every consumer
        paid = PaymentCompleted(
            order_id="o-free", payment_id="p-free", customer_id="customer-001", amount=Decimal("100.00")
        )
        forged = Envelope.wrap(paid, source="payments")
        await _publish_raw(secure_rabbit.admin_url(vhost).partition("?")[0], forged)
        admin = await connect(settings.broker_url())
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while not (letters := await admin.dead_letters("orders")):
                assert asyncio.get_running_loop().time() < deadline, "the forgery was not dead-lettered"
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
    assert [letter.reason for letter in letters] == ["unsigned: event from source 'payments' carries no signature"]
    errors = await _error_texts(settings)
    assert len(errors) == 3
    searched = {path: path.read_text(errors="replace") for path in settings.data_dir.rglob("*") if path.is_file()}
    searched[Path("dead letters")] = json.dumps([[letter.reason, dict(letter.headers)] for letter in letters])
    searched[Path("errors")] = "\n".join(errors)
    assert len(searched) > 8, sorted(searched)  # the shop's output, every service's log, ...
    leaks = {str(path): sorted(s[:6] for s in secrets if s in body) for path, body in searched.items()}
    assert {path: found for path, found in leaks.items() if found} == {}
    assert "shop.payment.completed" in searched[Path("dead letters")]  # the search does see content
