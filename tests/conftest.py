"""Shared test settings: real services are found by their port; a missing one skips the test
locally and fails it when `TIDINGS_REQUIRE_SERVICES=1` (as `.ci/run` sets)."""

from __future__ import annotations

import os
import socket

import pytest

SERVICES = {
    "postgres": ("127.0.0.1", 5432),
    "rabbitmq": ("127.0.0.1", 5672),
    "kafka": ("127.0.0.1", 9092),
}


def service_available(name: str) -> bool:
    host, port = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    """Skip (locally) or fail (in CI) when the real service `name` is not reachable."""
    if service_available(name):
        return
    host, port = SERVICES[name]
    message = f"{name} is not reachable on {host}:{port}; start it with `scripts/services.sh up {name}`"
    if os.environ.get("TIDINGS_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _real_services(request: pytest.FixtureRequest) -> None:
    for name in SERVICES:
        if request.node.get_closest_marker(name) is not None:
            require_service(name)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the mark to group the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`), the `slow` tests (each starts a whole shop or a
    private broker: five or more processes) run one after another on one worker, beside the rest of
    the suite, rather than several at once: on a two-core machine, several shops at a time starve
    each other past their deadlines. Everything else is isolated by name (files, vhosts, topic
    prefixes, databases, ports) and runs anywhere, in any order."""
    for item in items:
        if item.get_closest_marker("slow") is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group("processes"))
