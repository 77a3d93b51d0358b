"""URL normalisation of `tidings.store.database` (no I/O)."""

from __future__ import annotations

import pytest

from tidings.errors import ConfigurationError
from tidings.store.database import normalise_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/orders.db", "sqlite+aiosqlite:///data/orders.db"),
        ("sqlite:////abs/orders.db", "sqlite+aiosqlite:////abs/orders.db"),
        ("sqlite+aiosqlite:///orders.db", "sqlite+aiosqlite:///orders.db"),
        ("postgres://u:p@host:5432/db", "postgresql+asyncpg://u:***@host:5432/db"),
        ("postgresql://u:p@host/db", "postgresql+asyncpg://u:***@host/db"),
        ("postgresql+asyncpg://u@host/db", "postgresql+asyncpg://u@host/db"),
    ],
)
def test_plain_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert str(normalise_url(given)) == expected


def test_the_password_survives_normalisation() -> None:
    assert normalise_url("postgresql://u:secret@h/db").password == "secret"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "postgresql+psycopg2://u@h/db",
        "sqlite+pysqlite:///x.db",
        "sqlite://",
        "sqlite:///:memory:",
        "nonsense",
    ],
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        normalise_url(url)
