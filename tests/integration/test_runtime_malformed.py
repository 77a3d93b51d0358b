"""Malformed rows injected straight into the SQLite broker, consumed by a real `Service`:
each ends in the dead-letter table with a reason naming the problem, and the service goes on
to handle the next good event."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conformance.events import PING, Ping, ping
from tests.integration.sqlite_raw import binary_headers, inject_raw
from tidings.context import Context
from tidings.envelope import MAX_ID_LENGTH, MAX_MESSAGE_BYTES
from tidings.service import Service


def _headers(**changes: str | None) -> dict[str, str]:
    headers = binary_headers(ping(1, key="k"))
    for name, value in changes.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    return headers


GOOD_DATA = b'{"n": 1}'
CASES = [
    # (name, headers, body, expected reason prefix)
    (
        "not JSON",
        {"content-type": "application/cloudevents+json"},
        b"<order id=1/>",
        "not-json: body is not valid JSON",
    ),
    (
        "missing attribute",
        _headers(ce_source=None),
        GOOD_DATA,
        "missing-attribute: missing CloudEvents attribute(s): source",
    ),
    (
        "unknown type",
        _headers(ce_type="shop.unheard-of"),
        GOOD_DATA,
        "unknown-type: service 'consumer' has no handler for 'shop.unheard-of'",
    ),
    ("schema mismatch", _headers(), b'{"n": "one"}', "schema-mismatch: data does not match 'conformance.ping': n:"),
    ("too large", _headers(), b" " * (MAX_MESSAGE_BYTES + 1), f"too-large: body is {MAX_MESSAGE_BYTES + 1} bytes"),
    (
        "id too long",
        _headers(ce_id="i" * (MAX_ID_LENGTH + 1)),
        GOOD_DATA,
        f"invalid-attribute: id is {MAX_ID_LENGTH + 1} characters, the limit is {MAX_ID_LENGTH}",
    ),
]


@pytest.mark.parametrize(("name", "headers", "body", "reason"), CASES, ids=[case[0] for case in CASES])
async def test_malformed_message_is_dead_lettered_and_consumer_goes_on(
    tmp_path: Path, name: str, headers: dict[str, str], body: bytes, reason: str
) -> None:
    path = tmp_path / "broker.db"
    service = Service("consumer", broker=f"sqlite:///{path}")
    handled: list[int] = []

    @service.on(Ping)
    async def handle(event: Ping, ctx: Context) -> None:
        handled.append(event.n)

    async with service:
        inject_raw(path, type=PING, headers=headers, body=body, event_id=f"bad-{name}")
        await service.transport.publish([ping(2)])
        deadline = asyncio.get_running_loop().time() + 10
        while handled != [2] or service.stats["dead_lettered"] != 1:
            assert asyncio.get_running_loop().time() < deadline, (handled, service.stats)
            await asyncio.sleep(0.02)
        [letter] = await service.transport.dead_letters("consumer")
    assert letter.reason.startswith(reason), letter.reason
    assert letter.attempts == 1
    assert letter.body == body, "the dead letter must keep the original bytes"
