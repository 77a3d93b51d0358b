"""Validation of `RelayConfig` (no I/O)."""

from __future__ import annotations

import pytest

from tidings.errors import ConfigurationError
from tidings.store.relay import RelayConfig


def test_defaults_are_valid() -> None:
    config = RelayConfig()
    assert config.inbox_retention == 7 * 24 * 3600
    assert config.poll_interval <= 1.0


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_size": 0},
        {"poll_interval": 0},
        {"publish_timeout": 30.0, "lease": 30.0},
        {"inbox_retention": -1},
        {"prune_interval": 0},
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RelayConfig(**changes)  # type: ignore[arg-type]
