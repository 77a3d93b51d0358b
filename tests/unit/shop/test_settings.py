"""Settings: one database per service, from the environment or options; invalid values refused."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from services.settings import Settings, add_arguments
from tidings.errors import ConfigurationError


def test_defaults_are_sqlite_files_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.broker_url() == f"sqlite:///{tmp_path.resolve()}/broker.db"
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


@pytest.mark.parametrize("bad", [{"deadline": 0}, {"concurrency": 0}, {"api_port": 70000}, {"database": "mysql://x"}])
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Settings(**bad)  # type: ignore[arg-type]


def test_unparseable_environment_value_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="invalid shop setting"):
        Settings.from_env({"SHOP_DEADLINE": "soon"})
