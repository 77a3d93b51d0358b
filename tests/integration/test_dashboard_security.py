"""The dashboard locked down (issue 13): the admin token for replay and purge, read-only without
one, trusted Host and Origin, JSON-only bodies, and the security headers; over real HTTP to a
real uvicorn server, against the embedded broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.integration import dashboard_events
from tests.integration.dashboard_events import OrderPlaced
from tests.integration.processes import free_port
from tidings.context import Context
from tidings.dashboard import Recorder
from tidings.dashboard.config import DashboardConfig, config_from_env, load_token
from tidings.dashboard.wiring import Dashboard
from tidings.errors import ConfigurationError, PermanentError
from tidings.service import Service

TOKEN = "s3cret-admin-token-for-tests"


async def _serve(tmp_path: Path, config: DashboardConfig) -> AsyncIterator[tuple[httpx.AsyncClient, Service]]:
    broker = f"sqlite:///{tmp_path / 'broker.db'}"
    recorder = Recorder(broker=broker, database=f"sqlite:///{tmp_path / 'dashboard.db'}", events=dashboard_events)
    dashboard = Dashboard(recorder, config=config)
    inventory = Service("inventory", broker=broker, database=f"sqlite:///{tmp_path / 'inventory.db'}")

    @inventory.on(OrderPlaced)
    async def refuse(event: OrderPlaced, ctx: Context) -> None:
        raise PermanentError(f"order {event.order_id} refused")

    async with recorder, inventory:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(dashboard.app(), host="127.0.0.1", port=port, log_level="warning"))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        while not server.started:
            assert not task.done(), "the dashboard server did not start"
            await asyncio.sleep(0.02)
        async with inventory.transaction() as ctx:
            ctx.publish(OrderPlaced(order_id="o-1"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = asyncio.get_running_loop().time() + 15
            while not (await client.get("/api/dead-letters/inventory")).json():
                assert asyncio.get_running_loop().time() < deadline, "no dead letter"
                await asyncio.sleep(0.05)
            yield client, inventory
        server.should_exit = True
        await task


@pytest.fixture
async def locked(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Service]]:
    async for pair in _serve(tmp_path, DashboardConfig(token=TOKEN)):
        yield pair


@pytest.fixture
async def read_only(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Service]]:
    async for pair in _serve(tmp_path, DashboardConfig()):
        yield pair


ALL = {"all": True}


async def test_replay_and_purge_without_the_token_get_401(locked: tuple[httpx.AsyncClient, Service]) -> None:
    client, _ = locked
    for action in ("replay", "purge"):
        missing = await client.post(f"/api/dead-letters/inventory/{action}", json=ALL)
        assert missing.status_code == 401, missing.text
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await client.post(
            f"/api/dead-letters/inventory/{action}", json=ALL, headers={"Authorization": "Bearer not-the-token-at-all"}
        )
        assert wrong.status_code == 401
    assert len((await client.get("/api/dead-letters/inventory")).json()) == 1, "nothing was replayed or purged"


async def test_with_the_token_replay_and_purge_work(locked: tuple[httpx.AsyncClient, Service]) -> None:
    client, inventory = locked
    admin = {"Authorization": f"Bearer {TOKEN}", "Origin": str(client.base_url).rstrip("/")}
    [letter] = (await client.get("/api/dead-letters/inventory")).json()
    replayed = await client.post("/api/dead-letters/inventory/replay", json={"ids": [letter["id"]]}, headers=admin)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"replayed": 1}
    deadline = asyncio.get_running_loop().time() + 15
    while inventory.stats["dead_lettered"] < 2:  # handled again (and refused again)
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    purged = await client.post("/api/dead-letters/inventory/purge", json=ALL, headers=admin)
    assert purged.json() == {"purged": 1}
    assert (await client.get("/api/dead-letters/inventory")).json() == []


async def test_a_cross_origin_post_gets_403_even_with_the_token(locked: tuple[httpx.AsyncClient, Service]) -> None:
    client, _ = locked
    admin = {"Authorization": f"Bearer {TOKEN}"}
    foreign = await client.post(
        "/api/dead-letters/inventory/replay", json=ALL, headers={**admin, "Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert "evil.example" in foreign.json()["detail"]
    cross_site = await client.post(
        "/api/dead-letters/inventory/purge", json=ALL, headers={**admin, "Sec-Fetch-Site": "cross-site"}
    )
    assert cross_site.status_code == 403
    assert len((await client.get("/api/dead-letters/inventory")).json()) == 1


async def test_gets_from_a_foreign_host_get_403(locked: tuple[httpx.AsyncClient, Service]) -> None:
    client, _ = locked
    for path in ("/", "/api/events", "/api/dead-letters/inventory", "/orders/o-1", "/static/app.js"):
        rebound = await client.get(path, headers={"Host": "attacker.example:8080"})
        assert rebound.status_code == 403, path
        assert "attacker.example" in rebound.json()["detail"]
    assert (await client.get("/api/events", headers={"Host": "localhost:1234"})).status_code == 200


async def test_bodies_must_be_json_and_all_must_be_explicit(locked: tuple[httpx.AsyncClient, Service]) -> None:
    client, _ = locked
    admin = {"Authorization": f"Bearer {TOKEN}"}
    form = await client.post("/api/dead-letters/inventory/replay", data={"all": "true"}, headers=admin)
    assert form.status_code == 415
    empty = await client.post(
        "/api/dead-letters/inventory/replay", headers={**admin, "Content-Type": "application/json"}
    )
    assert empty.status_code == 422
    nothing = await client.post("/api/dead-letters/inventory/replay", json={}, headers=admin)
    assert nothing.status_code == 422
    assert "all" in nothing.text
    assert len((await client.get("/api/dead-letters/inventory")).json()) == 1


async def test_every_answer_carries_the_security_headers(locked: tuple[httpx.AsyncClient, Service]) -> None:
    client, _ = locked
    for response in (await client.get("/"), await client.get("/api/events"), await client.get("/nope")):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    page = (await client.get("/")).text
    assert "<script>" not in page, "no inline script"
    assert "onclick" not in page, "no inline handlers"
    assert (await client.get("/static/app.js")).headers["content-type"].startswith("text/javascript")


async def test_without_a_token_the_dashboard_is_read_only(read_only: tuple[httpx.AsyncClient, Service]) -> None:
    client, _ = read_only
    assert (await client.get("/api/config")).json()["read_only"] is True
    refused = await client.post("/api/dead-letters/inventory/replay", json=ALL, headers={"Authorization": "Bearer x"})
    assert refused.status_code == 403
    assert "read-only" in refused.json()["detail"]
    assert len((await client.get("/api/dead-letters/inventory")).json()) == 1


def test_the_token_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert load_token({}) is None
    assert load_token({"TIDINGS_DASHBOARD_TOKEN": f" {TOKEN}\n"}) == TOKEN
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert load_token({"TIDINGS_DASHBOARD_TOKEN_FILE": str(path)}) == TOKEN
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_token({"TIDINGS_DASHBOARD_TOKEN_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigurationError, match="at least 16"):
        DashboardConfig(token="short")
    config = config_from_env({"TIDINGS_DASHBOARD_HOSTS": "dash.example", "TIDINGS_DASHBOARD_MAX_BYTES": "1048576"})
    assert "dash.example" in config.trusted_hosts
    assert "127.0.0.1" in config.trusted_hosts
    assert config.retention.max_bytes == 1048576
    with pytest.raises(ConfigurationError, match="MAX_AGE"):
        config_from_env({"TIDINGS_DASHBOARD_MAX_AGE": "soon"})
