"""Rows no `publish` would write reach the consumer and fail to decode with the right reason.

The subscription loop itself never decodes, so a malformed row cannot stall the group: the
consumer gets it, `delivery.envelope()` or the registry raises `MalformedMessage`, and the
consumer dead-letters it with that reason.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.events import PING, Ping, event_of, ping
from tests.conformance.harness import Consumer
from tests.integration.sqlite_raw import binary_headers, inject_raw
from tidings.envelope import MAX_MESSAGE_BYTES
from tidings.errors import Malformation, MalformedMessage
from tidings.transport import Transport, connect

UNKNOWN = "shop.unheard-of"


def valid() -> tuple[dict[str, Any], bytes]:
    envelope = ping(7, key="k")
    return binary_headers(envelope), envelope.data


def headers_with(**changes: str | None) -> Callable[[], tuple[Any, bytes]]:
    def make() -> tuple[Any, bytes]:
        headers, body = valid()
        for name, value in changes.items():
            if value is None:
                del headers[name]
            else:
                headers[name] = value
        return headers, body

    return make


# name: (row maker, routing type, expected kind)
CASES: dict[str, tuple[Callable[[], tuple[Any, Any]], str, Malformation]] = {
    "headers not JSON": (lambda: ("{ce_id: 1", valid()[1]), PING, Malformation.NOT_JSON),
    "headers not UTF-8": (lambda: (b"\xff\xfe{}", valid()[1]), PING, Malformation.NOT_JSON),
    "headers not an object": (lambda: ("[1, 2]", valid()[1]), PING, Malformation.MISSING_ATTRIBUTE),
    "data not JSON": (lambda: (valid()[0], b'{"n": 7'), PING, Malformation.NOT_JSON),
    "missing source": (headers_with(ce_source=None), PING, Malformation.MISSING_ATTRIBUTE),
    "missing specversion and not structured": (headers_with(ce_specversion=None), PING, Malformation.MISSING_ATTRIBUTE),
    "bad time": (headers_with(ce_time="yesterday"), PING, Malformation.INVALID_ATTRIBUTE),
    "unknown type": (headers_with(ce_type=UNKNOWN), UNKNOWN, Malformation.UNKNOWN_TYPE),
    "newer version": (headers_with(ce_dataschema=f"urn:tidings:{PING}:9"), PING, Malformation.UNKNOWN_TYPE),
    "data not matching the schema": (lambda: (valid()[0], b'{"n": "seven"}'), PING, Malformation.SCHEMA_MISMATCH),
    "over the size limit": (lambda: (valid()[0], b" " * (MAX_MESSAGE_BYTES + 1)), PING, Malformation.TOO_LARGE),
}


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[tuple[Path, Transport, Consumer]]:
    path = tmp_path / "broker.db"
    transport = await connect(f"sqlite:///{path}?lease=5")
    consumer = Consumer(await transport.subscribe("g", [PING, UNKNOWN]))
    try:
        yield path, transport, consumer
    finally:
        await consumer.close()
        await transport.close()


@pytest.mark.parametrize("case", list(CASES))
async def test_malformed_row_raises_its_kind_when_decoded(broker: tuple[Path, Transport, Consumer], case: str) -> None:
    path, transport, consumer = broker
    make, routing_type, kind = CASES[case]
    headers, body = make()
    inject_raw(path, type=routing_type, headers=headers, body=body)

    (delivery,) = await consumer.take(1)
    with pytest.raises(MalformedMessage) as raised:
        event_of(delivery)  # delivery.envelope(), then the registry
    assert raised.value.kind is kind

    await delivery.dead_letter(str(raised.value))
    (letter,) = await transport.dead_letters("g")
    assert letter.reason.startswith(kind.value)
    assert letter.attempts == 1
    assert letter.body == (body if isinstance(body, bytes) else body.encode())
    assert (await transport.backlog())["g"] == 0


async def test_malformed_rows_do_not_stall_the_group(broker: tuple[Path, Transport, Consumer]) -> None:
    path, transport, consumer = broker
    for make, routing_type, _ in CASES.values():
        headers, body = make()
        inject_raw(path, type=routing_type, headers=headers, body=body)
    good = ping(42)
    await transport.publish([good])

    decoded, refused = [], []
    for delivery in await consumer.take(len(CASES) + 1):
        try:
            decoded.append(event_of(delivery))
        except MalformedMessage as error:
            refused.append(error.kind)
            await delivery.dead_letter(str(error))
        else:
            await delivery.ack()
    assert decoded == [Ping(n=42)]
    assert sorted(refused) == sorted(kind for _, _, kind in CASES.values())
    assert len(await transport.dead_letters("g")) == len(CASES)
    assert (await transport.backlog())["g"] == 0


async def test_dead_letter_of_unreadable_headers_keeps_them_raw(broker: tuple[Path, Transport, Consumer]) -> None:
    path, transport, consumer = broker
    inject_raw(path, type=PING, headers="{ce_id: 1", body=b"{}")
    (delivery,) = await consumer.take(1)
    await delivery.dead_letter("unreadable")
    (letter,) = await transport.dead_letters("g")
    assert letter.headers == {"x-tidings-raw-headers": repr("{ce_id: 1")}


def test_valid_rows_written_by_the_helper_decode(tmp_path: Path) -> None:
    """The helper's valid baseline really is valid, so each case breaks exactly one thing."""
    headers, body = valid()
    assert json.loads(json.dumps(headers))["ce_type"] == PING
    assert body == b'{"n":7,"key":"k","pad":""}'
