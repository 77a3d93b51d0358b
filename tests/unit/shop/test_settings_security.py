"""The shop's settings with identities and keys: each service gets its own credentials and keys."""

from __future__ import annotations

from pathlib import Path

from services.provision import write_service_keys
from services.settings import SERVICES, Settings
from tidings.security import identities
from tidings.service import Service


def test_each_service_connects_as_itself_and_signs_as_itself(tmp_path: Path) -> None:
    plan = identities.plan([Service(name) for name in SERVICES], prefix="shop-")
    identities.save(tmp_path / "identities.json", plan)
    write_service_keys(tmp_path / "keys")
    settings = Settings(
        broker="amqp://admin:admin-pw@broker:5672/shop",
        database="postgresql://postgres:pg-pw@db:5432",
        identities=tmp_path / "identities.json",
        keys=tmp_path / "keys",
    )
    orders = next(identity for identity in plan if identity.service == "orders")
    assert settings.service_broker_url("orders") == f"amqp://shop-orders:{orders.password}@broker:5672/shop"
    assert settings.database_url("orders") == f"postgresql+asyncpg://shop-orders:{orders.password}@db:5432/shop_orders"
    signing = settings.signing("orders")
    assert signing is not None
    assert signing.key is not None
    assert signing.key.source == "orders"
    assert signing.ring is not None
    assert sorted(key.source for key in signing.ring) == sorted(SERVICES)
    assert not any(key.can_sign for key in signing.ring)  # the ring holds public halves only
    assert "admin-pw" not in repr(settings)
    assert "pg-pw" not in repr(settings)
    assert (tmp_path / "identities.json").stat().st_mode & 0o777 == 0o600


def test_without_identities_every_service_uses_the_given_urls() -> None:
    settings = Settings(broker="amqp://guest:guest@127.0.0.1:5672/")
    assert settings.service_broker_url("orders") == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.signing("orders") is None
