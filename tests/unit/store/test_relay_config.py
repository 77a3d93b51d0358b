"""Validation of `RelayConfig` and `InboxRetention`'s settings (no I/O)."""

from __future__ import annotations

import pytest

from tidings.errors import ConfigurationError
from tidings.store.relay import RelayConfig
from tidings.store.retention import InboxRetention


def test_defaults_are_valid() -> None:
    config = RelayConfig()
    assert config.poll_interval <= 1.0
    retention = InboxRetention(None)  # type: ignore[arg-type]  # the store is not used here
    assert (retention.retention, retention.interval) == (7 * 24 * 3600, 600)


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_size": 0},
        {"poll_interval": 0},
        {"publish_timeout": 30.0, "lease": 30.0},
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RelayConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("changes", [{"retention": -1}, {"interval": 0}])
def test_invalid_retention_settings_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        InboxRetention(None, **changes)  # type: ignore[arg-type]
