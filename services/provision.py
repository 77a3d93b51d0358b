"""`shop provision`: a broker user and a database role per shop service, and signing keys.

The identities come from the services' own declarations (`tidings.security.identities.plan`
over the five `build(settings)` results): what each consumes and publishes decides its broker
permissions. Run once per deployment with an administrator's URLs; it writes the credentials
file (mode 600) that `shop up --identities FILE` hands to each service, and with `--keys DIR`
one Ed25519 key per service (`<service>.json`, private, mode 600) and `ring.json` (every
service's public key), which `shop up --keys DIR` uses to sign and verify every event.
Re-running keeps existing passwords and keys.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

from services.orders.legacy import ORDER_EVENTS
from services.settings import SERVICES, Settings
from tidings.errors import ConfigurationError
from tidings.security import Key, identities, load_keys, write_keys
from tidings.security.identities import Identity
from tidings.service import Service


def declared(settings: Settings) -> list[Service]:
    """The five services as `shop up` builds them (not started)."""
    plain = replace(settings, identities=None, keys=None)
    return [importlib.import_module(f"services.{name}.service").build(plain) for name in SERVICES]


async def provision(settings: Settings, target: Path, *, prefix: str = "", keys: Path | None = None) -> list[Identity]:
    """Create or update the users and roles on `settings.broker` and `settings.database` (the
    administrator's URLs) and write the credentials file `target`; keys into `keys` if given."""
    plan = identities.plan(
        declared(settings), prefix=prefix, passwords=_passwords(target), queues={"orders": [ORDER_EVENTS.name]}
    )
    broker = settings.broker_url()
    if broker.startswith(("amqp://", "amqps://")):
        from tidings.transport.rabbitmq import identities as rabbitmq

        await rabbitmq.apply(broker, plan)
    elif broker.startswith("kafka://"):
        from tidings.transport.kafka import identities as kafka

        await kafka.apply(broker, plan)
    elif not broker.startswith("sqlite://"):
        raise ConfigurationError("shop provision knows amqp(s)://, kafka:// and the embedded sqlite:// broker")
    if settings.database is not None:
        from tidings.store import identities as store

        await store.apply(settings.database, plan, prefix=settings.db_prefix)
    identities.save(target, plan)
    if keys is not None:
        write_service_keys(keys)
    return plan


def _passwords(target: Path) -> dict[str, str]:
    existing = identities.load(target) if target.exists() else {}
    return {name: item.password for name, item in existing.items()}


def write_service_keys(folder: Path) -> None:
    """One Ed25519 key per service and the ring of their public halves; existing keys are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    public = []
    for name in SERVICES:
        path = folder / f"{name}.json"
        keys = load_keys(path) if path.exists() else [Key.generate(f"{name}-1", name, "ed25519")]
        write_keys(path, keys, private=True)
        public += [key.public_only() for key in keys]
    write_keys(folder / "ring.json", public, private=False)
