"""The whole conformance suite against the RabbitMQ variants the factory list does not hold:
classic queues (`queue_type=classic`) and per-key ordering (`ordering=key`).

The ordered variant has one active consumer per group by design, so it fails
`test_competing_consumers_share_the_work`; that failure is expected and asserted (strict xfail).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.conformance import (
    test_backlog,
    test_cancellation,
    test_crash,
    test_dead_letters,
    test_ordering,
    test_routing,
    test_settlement,
)
from tests.conformance.harness import Broker
from tests.integration.rabbitmq_support import RabbitAdapter

pytestmark = pytest.mark.rabbitmq
SUITE = [test_backlog, test_cancellation, test_crash, test_dead_letters, test_ordering, test_routing, test_settlement]
CASES = [
    (f"{module.__name__.rsplit('.', 1)[1]}::{name}", function)
    for module in SUITE
    for name, function in inspect.getmembers(module, inspect.iscoroutinefunction)
    if name.startswith("test_") and function.__module__ == module.__name__
]
SHARES_WORK = "test_routing::test_competing_consumers_share_the_work"


def variant_cases(query: str) -> list[object]:
    cases: list[object] = []
    for name, function in CASES:
        marks = []
        if query == "ordering=key" and name == SHARES_WORK:
            marks.append(pytest.mark.xfail(reason="one active consumer per group", strict=True))
        cases.append(pytest.param(query, function, id=f"{query}-{name}", marks=marks))
    return cases


@pytest.fixture
async def variant_broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    async with RabbitAdapter(query=request.param).target(tmp_path) as target:
        broker = Broker(target)
        try:
            yield broker
        finally:
            await broker.aclose()


@pytest.mark.parametrize(
    ("variant_broker", "case"),
    [*variant_cases("queue_type=classic"), *variant_cases("ordering=key")],
    indirect=["variant_broker"],
)
async def test_conformance(variant_broker: Broker, case: Callable[[Broker], Awaitable[None]]) -> None:
    await case(variant_broker)
