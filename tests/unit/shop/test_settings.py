"""Settings: one database per service, from the environment or options; invalid values refused."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from services.kit.service import event_loop_factory
from services.settings import Settings, add_arguments
from tidings.errors import ConfigurationError


def test_defaults_are_sqlite_files_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.broker_url() == f"sqlite:///{tmp_path.resolve()}/broker.db?poll_max=0.02"
    assert settings.database_url("orders") == f"sqlite+aiosqlite:///{tmp_path.resolve()}/orders.db"


def test_a_postgresql_server_gives_each_service_its_own_database() -> None:
    settings = Settings(database="postgresql://postgres:pw@127.0.0.1:5432", db_prefix="t1_")
    assert settings.database_url("payments") == "postgresql+asyncpg://postgres:pw@127.0.0.1:5432/t1_payments"


def test_environment_round_trip_and_options_win(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, deadline=3.0, api_port=0)
    assert Settings.from_env(settings.to_env()) == Settings(data_dir=tmp_path.resolve(), deadline=3.0, api_port=0)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings.with_args(parser.parse_args(["--deadline", "7"])).deadline == 7.0


def test_retention_and_metrics_port_come_from_the_environment_and_options(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, idempotency_retention=60.0, metrics_port=0)
    env = settings.to_env()
    assert (env["SHOP_IDEMPOTENCY_RETENTION"], env["SHOP_METRICS_PORT"]) == ("60.0", "0")
    assert Settings.from_env(env) == replace(settings, data_dir=tmp_path.resolve())
    assert "SHOP_METRICS_PORT" not in Settings().to_env()  # off unless asked for
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    given = settings.with_args(parser.parse_args(["--idempotency-retention", "5", "--metrics-port", "9100"]))
    assert (given.idempotency_retention, given.metrics_port) == (5.0, 9100)


@pytest.mark.parametrize(
    "bad",
    [
        {"deadline": 0},
        {"concurrency": 0},
        {"api_port": 70000},
        {"database": "mysql://x"},
        {"idempotency_retention": 0},
        {"metrics_port": -1},
        {"event_loop": "trio"},
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Settings(**bad)  # type: ignore[arg-type]


def test_unparseable_environment_value_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="invalid shop setting"):
        Settings.from_env({"SHOP_DEADLINE": "soon"})


def test_the_event_loop_is_uvloop_unless_the_environment_or_an_option_says_asyncio() -> None:
    assert Settings().event_loop == ("asyncio" if sys.platform == "win32" else "uvloop")
    assert Settings.from_env({"SHOP_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    option = parser.parse_args(["--event-loop", "asyncio"])
    assert Settings(event_loop="uvloop").with_args(option).event_loop == "asyncio"
    with pytest.raises(SystemExit):  # argparse names the choices
        parser.parse_args(["--event-loop", "trio"])


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_a_service_process_runs_on_the_loop_its_settings_name(event_loop: str) -> None:
    factory = event_loop_factory(event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        running = runner.run(_running_loop())
    assert (type(running).__module__.split(".")[0] == "uvloop") == (event_loop == "uvloop")


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()
