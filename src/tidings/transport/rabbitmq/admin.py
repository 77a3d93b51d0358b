"""Admin calls on RabbitMQ: dead letters (list, replay, purge) and each group's backlog.

Dead letters live in the group's classic queue `<ns>:<group>:dlq`. Listing gets up to `limit`
messages on a private channel without acking them and closes the channel, which puts them back
in their places: nothing is consumed, but a listing running at the same moment as another sees
fewer. Replay and purge scan the queue the same way, act on the chosen messages (replay
publishes a copy to the group's queue, or to the legacy queue it came from, with the
`x-tidings-` headers removed, so attempts start again at 1; then acks) and return the rest.

The backlog comes from the management HTTP API (`messages` = ready + unacked per queue): the
group's queue plus its delay queues. Its figures are as fresh as the broker's statistics
(`collect_statistics_interval`, 5 s by default).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import Collection
from datetime import datetime
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import aiormq
from aio_pika.abc import AbstractChannel
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from tidings.errors import MalformedMessage, TransportError
from tidings.transport.base import DeadLetter
from tidings.transport.rabbitmq.codec import (
    ATTEMPTS,
    DEAD_AT,
    DEAD_LETTER_ID,
    ORIGIN,
    REASON,
    attempt_of,
    copy_properties,
    header_values,
    to_envelope,
)
from tidings.transport.rabbitmq.config import quote_vhost
from tidings.transport.rabbitmq.link import BROKER_ERRORS, Link
from tidings.transport.rabbitmq.topology import dead_letter_queue, group_queue, parse_queue


class Admin:
    """Dead letters and backlog of the groups in the transport's vhost and namespace."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._config = link.config

    async def dead_letters(self, group: str, limit: int) -> list[DeadLetter]:
        async with self._dead_letter_queue(group) as (raw, queue, count):
            letters = []
            for _ in range(min(limit, count)):
                message = await raw.basic_get(queue)
                if not isinstance(message.delivery, Basic.GetOk):
                    break
                letters.append(self._letter(group, message))
            return letters

    async def replay(self, group: str, ids: Collection[str] | None) -> int:
        async with self._dead_letter_queue(group) as (raw, queue, count):
            chosen = await self._choose(raw, queue, count, ids)
            home = group_queue(self._config, group)
            await self._link.send(
                [
                    ("", _origin(message) or home, copy_properties(message.header.properties, {}), message.body)
                    for message in chosen
                ]
            )
            await self._ack(raw, chosen)
            return len(chosen)

    async def purge(self, group: str, ids: Collection[str] | None) -> int:
        async with self._dead_letter_queue(group) as (raw, queue, count):
            if count == 0:
                return 0
            if ids is None:
                purged = await raw.queue_purge(queue)
                return int(purged.message_count or 0)
            chosen = await self._choose(raw, queue, count, ids)
            await self._ack(raw, chosen)
            return len(chosen)

    async def backlog(self) -> dict[str, int]:
        bases, user, password = self._config.managements()
        path = f"/api/queues/{quote_vhost(self._config.vhost)}?columns=name,messages"
        queues: list[dict[str, Any]] = []
        for index, base in enumerate(bases):  # in a cluster, any node answers for all of them
            try:
                queues = await asyncio.to_thread(_get_json, base + path, user, password)
                break
            except TransportError:
                if index == len(bases) - 1:
                    raise
        groups: dict[str, int] = {}
        pending: dict[str, int] = {}
        for queue in queues:
            parsed = parse_queue(self._config, str(queue.get("name", "")))
            if parsed is None or parsed[1] == "dlq":
                continue
            group, role = parsed
            if role == "group":
                groups.setdefault(group, 0)
            pending[group] = pending.get(group, 0) + int(queue.get("messages") or 0)
        return {group: pending.get(group, 0) for group in sorted(groups)}

    # -- helpers ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _dead_letter_queue(self, group: str) -> Any:
        """(raw channel, queue name, ready count) on a private channel closed afterwards, which
        returns every message got and not acked to its place; count 0 if the group is unknown."""
        queue = dead_letter_queue(self._config, group)
        channel: AbstractChannel = await self._link.channel()
        try:
            raw = await channel.get_underlay_channel()
            try:
                declared = await raw.queue_declare(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity:
                yield raw, queue, 0
                return
            yield raw, queue, int(declared.message_count or 0)
        except BROKER_ERRORS as error:
            raise TransportError(f"dead-letter queue {queue!r}: {error!r}") from error
        finally:
            with contextlib.suppress(*BROKER_ERRORS):
                await channel.close()

    async def _choose(
        self, raw: RawChannel, queue: str, count: int, ids: Collection[str] | None
    ) -> list[DeliveredMessage]:
        chosen = []
        for _ in range(count):
            message = await raw.basic_get(queue)
            if not isinstance(message.delivery, Basic.GetOk):
                break
            if ids is None or letter_id(message) in ids:
                chosen.append(message)
        return chosen

    @staticmethod
    async def _ack(raw: RawChannel, messages: list[DeliveredMessage]) -> None:
        for message in messages:
            if message.delivery_tag is not None:
                await raw.basic_ack(message.delivery_tag)

    def _letter(self, group: str, message: DeliveredMessage) -> DeadLetter:
        headers = header_values(message.header.properties)
        reason = headers.get(REASON)
        if reason is None:
            cause = headers.get("x-first-death-reason", "unknown")
            reason = f"dead-lettered by the broker ({cause}) from {headers.get('x-first-death-queue', '?')}"
        attempts = headers.get(ATTEMPTS)
        try:
            envelope = to_envelope(message)
            event_id, event_type = envelope.id, envelope.type
        except MalformedMessage:
            event_id, event_type = None, None
        return DeadLetter(
            id=letter_id(message),
            group=group,
            reason=str(reason),
            attempts=attempts if isinstance(attempts, int) else attempt_of(headers, False),
            headers={key: str(value) for key, value in headers.items() if not key.startswith("x-")},
            body=message.body,
            event_id=event_id,
            type=event_type,
            dead_lettered_at=_when(headers),
        )


def letter_id(message: DeliveredMessage) -> str:
    """A dead letter's handle: the id given when it was dead-lettered, else a content hash."""
    properties = message.header.properties
    given = (properties.headers or {}).get(DEAD_LETTER_ID)
    if given:
        return given.decode() if isinstance(given, bytes) else str(given)
    digest = hashlib.sha256(message.body)
    digest.update(repr(sorted((properties.headers or {}).items())).encode())
    return f"{properties.message_id or 'message'}-{digest.hexdigest()[:16]}"


def _origin(message: DeliveredMessage) -> str | None:
    origin = (message.header.properties.headers or {}).get(ORIGIN)
    if isinstance(origin, bytes):
        return origin.decode()
    return origin if isinstance(origin, str) else None


def _when(headers: dict[str, Any]) -> datetime | None:
    value = headers.get(DEAD_AT)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value)
    return None


def _get_json(url: str, user: str, password: str) -> list[dict[str, Any]]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = Request(url, headers={"Authorization": f"Basic {token}", "Accept": "application/json"})
    try:
        with urlopen(request, timeout=10) as response:
            document = json.load(response)
    except (URLError, OSError, ValueError) as error:
        raise TransportError(f"the management API at {url} did not answer: {error!r}") from error
    if not isinstance(document, list):
        raise TransportError(f"unexpected answer from the management API at {url}")
    return document
