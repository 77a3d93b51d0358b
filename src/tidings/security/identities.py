"""Per-service identities, planned from what each service declares.

A `Service` says what it consumes (its group, `handled_types`) and what it publishes
(`publishes(...)`). `plan(services)` turns that into one `Identity` per service: a user name
(`<prefix><service>`), a password, and those declarations, which each broker's provisioning
(`tidings.transport.rabbitmq.identities`, `tidings.transport.kafka.identities`,
`tidings.store.identities`) turns into the narrowest permissions it can express. Passwords are
generated (`secrets.token_urlsafe`) unless given, and travel in a credentials file readable by
its owner only (`save`/`load`), never on a command line.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from tidings.errors import ConfigurationError

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


class Declared(Protocol):
    """What planning needs of a service (`tidings.service.Service` has it)."""

    name: str
    group: str
    published_types: list[str]

    @property
    def handled_types(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Identity:
    """One service's broker and database identity."""

    service: str
    user: str
    password: str = field(repr=False)
    group: str
    consumes: tuple[str, ...] = ()
    publishes: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    """Queues outside the namespace that it declares and consumes: its legacy sources (`tidings.legacy`)."""

    def url(self, url: str) -> str:
        """`url` (a broker or database server URL) with this identity's user and password."""
        parts = urlsplit(url)
        hosts = parts.netloc.rpartition("@")[2]
        netloc = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@{hosts}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def plan(
    services: Iterable[Declared],
    *,
    prefix: str = "",
    passwords: Mapping[str, str] | None = None,
    queues: Mapping[str, Sequence[str]] | None = None,
) -> list[Identity]:
    """One identity per service; `passwords` (by service) keeps existing ones on a re-run;
    `queues` (by service) names the legacy-source queues a service consumes besides its own."""
    identities = []
    for service in services:
        user = f"{prefix}{service.name}"
        if not _NAME.match(user):
            raise ConfigurationError(f"identity {user!r}: use 1-100 letters, digits, '_', '.', '-'")
        password = (passwords or {}).get(service.name) or secrets.token_urlsafe(24)
        identities.append(
            Identity(
                service.name,
                user,
                password,
                service.group,
                tuple(service.handled_types),
                tuple(service.published_types),
                tuple((queues or {}).get(service.name, ())),
            )
        )
    return identities


def save(path: str | Path, identities: Sequence[Identity]) -> None:
    """Write the identities, passwords included, to `path` with mode 600."""
    document = {
        identity.service: {
            "user": identity.user,
            "password": identity.password,
            "group": identity.group,
            "consumes": list(identity.consumes),
            "publishes": list(identity.publishes),
            "queues": list(identity.queues),
        }
        for identity in identities
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch(mode=0o600, exist_ok=True)
    target.chmod(0o600)
    target.write_text(json.dumps(document, indent=2) + "\n")


def load(path: str | Path) -> dict[str, Identity]:
    """The identities of a credentials file, by service."""
    try:
        document = json.loads(Path(path).read_text())
        return {
            service: Identity(
                service,
                str(item["user"]),
                str(item["password"]),
                str(item.get("group", service)),
                tuple(item.get("consumes", ())),
                tuple(item.get("publishes", ())),
                tuple(item.get("queues", ())),
            )
            for service, item in document.items()
        }
    except OSError as error:
        raise ConfigurationError(f"cannot read the credentials file {str(path)!r}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigurationError(f"the credentials file {str(path)!r} is not a tidings identities file") from None
