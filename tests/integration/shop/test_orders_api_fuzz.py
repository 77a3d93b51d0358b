"""Schemathesis fuzzes the orders API from the OpenAPI schema it serves, against a running
orders service (`python -m services.orders`) on SQLite and on PostgreSQL: no request gets a 5xx,
every response matches the schema (status codes, bodies, headers), and the service is still up
afterwards. Each operation gets schema-valid and schema-invalid requests. Derandomized, so a run
is repeatable. Left out: `positive_data_acceptance`, because an unknown sku
is refused (422) by the catalog, which the schema cannot know, and `negative_data_rejection` for
query strings (see below)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.settings import Settings
from services.supervisor import read_ready_file

ROOT = Path(__file__).resolve().parents[3]
POSTGRES = "postgresql://postgres:postgres@127.0.0.1:5432"


class OrdersProcess:
    """`python -m services.orders` on a free port, stopped with SIGTERM."""

    def __init__(self, shop: Settings) -> None:
        self.settings = shop
        shop.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **shop.to_env(), "SHOP_LOG_LEVEL": "WARNING"}
        self.log = shop.data_dir / "orders.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.orders"], cwd=ROOT, env=env, stdout=output, stderr=output
            )
        deadline = time.monotonic() + 60
        while (info := read_ready_file(shop, "orders")) is None:
            assert self.process.poll() is None, f"the orders service exited:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"the orders service was not ready in 60 s:\n{self.log.read_text()}"
            time.sleep(0.1)
        self.api = str(info["api"])

    def assert_running(self) -> None:
        assert self.process.poll() is None, f"the orders service died:\n{self.log.read_text()[-3000:]}"

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=60)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def orders_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrdersProcess]:
    data = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    shop = Settings(data_dir=data, broker=f"sqlite:///{data / 'broker.db'}", api_port=0)
    prefix = f"fuzz_{os.getpid()}_"
    if request.param == "postgres":
        shop = Settings(data_dir=data, broker=shop.broker, api_port=0, database=POSTGRES, db_prefix=prefix)
    orders = OrdersProcess(shop)
    try:
        yield orders
        orders.assert_running()
        assert httpx.get(f"{orders.api}/health", timeout=10).status_code == 200
        assert orders.stop() == 0, orders.log.read_text()[-3000:]
    finally:
        if orders.process.poll() is None:
            orders.process.kill()
        if request.param == "postgres":
            asyncio.run(_drop(f"{prefix}orders"))


@pytest.mark.parametrize("mode", list(GenerationMode), ids=str)
def test_no_request_fails_the_api_or_breaks_its_schema(orders_api: OrdersProcess, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{orders_api.api}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.label for operation in operations} >= {"POST /orders", "GET /orders/{order_id}"}
    fuzzed = set()
    for operation in operations:
        try:
            fuzz(operation, mode, orders_api)
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue  # nothing to make invalid: no input (GET /catalog), or any string will do (an order id)
        fuzzed.add(operation.label)
    assert fuzzed >= {"POST /orders", "GET /orders"}


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, orders_api: OrdersProcess) -> None:
    # A query string carries strings only, so a "schema-invalid" value often arrives as a valid one
    # (`id=false` is the list ["false"]): the negative-data check is for bodies here.
    excluded = [positive_data_acceptance, *([negative_data_rejection] if operation.method == "get" else [])]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(excluded_checks=excluded, timeout=30)
        orders_api.assert_running()

    run()


async def _drop(database: str) -> None:
    engine = create_async_engine(f"{POSTGRES}/postgres".replace("postgresql", "postgresql+asyncpg"))
    try:
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        await engine.dispose()


HOSTILE = [
    "/orders/%00",
    "/orders/a%00b",
    "/orders?customer=%00",
    "/orders?id=%00&id=x",
    "/orders?settled_after=9999-12-31T23:59:59-23:59",
    "/orders?settled_after=0001-01-01T00:00:00%2B23:59",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_strings_no_database_can_store_get_a_4xx(orders_api: OrdersProcess, target: str) -> None:
    """What fuzzing found on PostgreSQL: a NUL byte (PostgreSQL text cannot hold one) and a
    timestamp that overflows when converted to UTC were 500s."""
    response = httpx.get(f"{orders_api.api}{target}", timeout=10)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    orders_api.assert_running()
