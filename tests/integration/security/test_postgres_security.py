"""PostgreSQL, private TLS-only server: `sslmode=verify-full` with the test's CA, and a role per
service that owns only its own database."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.integration.security.pki import Pki
from tests.integration.security.private_postgres import ADMIN_PASSWORD, PrivatePostgres
from tidings.errors import ConfigurationError
from tidings.security import identities
from tidings.service import Service
from tidings.store import Store
from tidings.store import identities as store_identities

pytestmark = pytest.mark.postgres


async def test_verify_full_connects_with_the_right_ca_and_refuses_a_wrong_host_or_unknown_ca(
    secure_postgres: PrivatePostgres, pki: Pki
) -> None:
    store = await Store.open(secure_postgres.admin_url(), migrate=False)
    try:
        async with store.engine.connect() as connection:
            assert await connection.scalar(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) is True
    finally:
        await store.close()
    wrong_host = secure_postgres.admin_url("127.0.0.1")
    unknown_ca = secure_postgres.admin_url().replace(str(pki.ca), str(pki.other_ca))
    for url, why in ((wrong_host, "IP address mismatch"), (unknown_ca, "unable to get local issuer certificate")):
        with pytest.raises(ConfigurationError) as refused:
            await Store.open(url)
        message = str(refused.value)
        assert message.startswith("TLS to the database postgresql+asyncpg://postgres:***@")
        assert why in message
        assert ADMIN_PASSWORD not in message
        assert "\n" not in message


async def test_each_service_role_owns_its_database_and_cannot_open_another(secure_postgres: PrivatePostgres) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}_"
    plan = identities.plan([Service("orders"), Service("payments")], prefix=prefix)
    await store_identities.apply(secure_postgres.admin_url(), plan, prefix=prefix)
    await store_identities.apply(secure_postgres.admin_url(), plan, prefix=prefix)  # idempotent
    orders, _ = plan
    server = secure_postgres.admin_url()

    def database(identity: identities.Identity, name: str) -> str:
        return identity.url(server).replace("/postgres?", f"/{prefix}{name}?")

    store = await Store.open(database(orders, "orders"))  # migrations run as the owner
    try:
        async with store.engine.connect() as connection:
            owner = await connection.scalar(
                text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
            )
            assert owner == orders.user
            assert await connection.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")) is False
    finally:
        await store.close()
    with pytest.raises(DBAPIError, match=f'permission denied for database "{prefix}payments"'):
        await Store.open(database(orders, "payments"))
