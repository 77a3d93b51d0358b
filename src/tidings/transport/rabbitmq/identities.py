"""Least-privilege RabbitMQ users, one per service, from `tidings.security.identities` plans.

For service `S` (group `G`) under namespace `N`, through the management HTTP API:

- configure and read: the events exchange `N.events` and `G`'s own queues (`N:G`, `N:G:dlq`,
  `N:G:delay:*`), and its legacy-source queues (`Identity.queues`): it declares and binds them,
  and consumes only them;
- write: the same, plus the default exchange (retries wait in delay queues and dead letters are
  replayed through it);
- topic permission on `N.events`: write only the routing keys (event types) `S` publishes, read
  (bind) only those it consumes.

The default exchange routes by queue name and RabbitMQ applies no topic permission there, so a
service could put a message straight on another's queue: signed events (`tidings.security`) are
what make such a message worthless. Tag `management`, so `backlog()` can read its own queues.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tidings.errors import ConfigurationError, TransportError
from tidings.security.identities import Identity
from tidings.transport import urls
from tidings.transport.rabbitmq.config import RabbitConfig, quote_vhost


def _alternatives(names: Sequence[str]) -> str:
    return "|".join(re.escape(name) for name in names)


def permissions(identity: Identity, namespace: str) -> tuple[dict[str, str], dict[str, str]]:
    """(vhost permissions, topic permissions on the events exchange) of `identity`."""
    own = f"{re.escape(namespace)}:{re.escape(identity.group)}(:dlq|:delay:[0-9]+)?"
    if identity.queues:
        own = f"{own}|{_alternatives(identity.queues)}"
    exchange = re.escape(f"{namespace}.events")
    never = "^$"  # matches no routing key: RabbitMQ has no "nothing" permission
    vhost = {
        "configure": f"^({exchange}|{own})$",
        "write": f"^({exchange}|{own}|amq\\.default)$",
        "read": f"^({exchange}|{own})$",
    }
    topic = {
        "exchange": f"{namespace}.events",
        "write": f"^({_alternatives(identity.publishes)})$" if identity.publishes else never,
        "read": f"^({_alternatives(identity.consumes)})$" if identity.consumes else never,
    }
    return vhost, topic


async def apply(admin_url: str, identities: Sequence[Identity]) -> None:
    """Create or update each identity's user and permissions on the broker of `admin_url`
    (an administrator's `amqp(s)://` URL, with `management_url` if not the default port).
    The vhost is created if missing. Idempotent: re-running with the same plan changes nothing."""
    config = RabbitConfig.from_url(admin_url)
    base, user, password = config.management()
    vhost = quote_vhost(config.vhost)
    await asyncio.to_thread(_call, "PUT", f"{base}/api/vhosts/{vhost}", user, password, {})
    for identity in identities:
        vhost_permissions, topic = permissions(identity, config.namespace)
        account = quote_vhost(identity.user)
        body = {"password": identity.password, "tags": "management"}
        await asyncio.to_thread(_call, "PUT", f"{base}/api/users/{account}", user, password, body)
        await asyncio.to_thread(
            _call, "PUT", f"{base}/api/permissions/{vhost}/{account}", user, password, vhost_permissions
        )
        await asyncio.to_thread(_call, "PUT", f"{base}/api/topic-permissions/{vhost}/{account}", user, password, topic)


def _call(method: str, url: str, user: str, password: str, body: dict[str, Any]) -> None:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Basic {token}", "content-type": "application/json"},
    )
    try:
        with urlopen(request, timeout=10):
            pass
    except HTTPError as error:
        if error.code in (401, 403):
            raise ConfigurationError(
                f"the management API at {urls.redact(url)} refused {user!r}: provisioning needs an administrator"
            ) from None
        raise TransportError(f"the management API at {urls.redact(url)} answered {error.code} to {method}") from None
    except (URLError, OSError) as error:
        raise TransportError(f"the management API at {urls.redact(url)} did not answer: {error}") from None
