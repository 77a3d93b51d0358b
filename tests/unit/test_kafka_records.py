"""What the Kafka transport reads from a record without decoding it, and the dead letter it makes of
one: a record no one can read is handed out (never skipped, never a crash), and a dead letter too
large to produce keeps its headers and reason but not its body."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tidings.envelope import MAX_MESSAGE_BYTES, STRUCTURED
from tidings.transport.kafka.cluster import record_type, relevant
from tidings.transport.kafka.config import HEADER_ORIGIN, HEADER_REASON
from tidings.transport.kafka.delivery import dead_letter_record

TYPES = {"shop.order.created"}


def record(headers: list[tuple[str, bytes]], value: bytes = b"{}") -> Any:
    return SimpleNamespace(topic="p.events", partition=2, offset=41, key=b"k", value=value, headers=headers)


def test_a_record_of_another_type_is_skipped_and_one_of_the_groups_is_not() -> None:
    assert relevant(record([("ce_type", b"shop.order.created")]), "g", TYPES)
    assert not relevant(record([("ce_type", b"shop.payment.captured")]), "g", TYPES)


def test_a_record_whose_type_is_missing_or_empty_is_handed_out() -> None:
    assert relevant(record([]), "g", TYPES)
    assert relevant(record([("ce_type", b"")]), "g", TYPES)
    assert relevant(record([("content-type", STRUCTURED.encode())], b'{"type": ""}'), "g", TYPES)


def test_a_structured_body_nested_too_deeply_has_no_type_and_is_handed_out() -> None:
    deep = record([("content-type", STRUCTURED.encode())], b"[" * 100_000 + b"]" * 100_000)
    assert record_type({"content-type": STRUCTURED.encode()}, deep.value) is None
    assert relevant(deep, "g", TYPES)


def test_a_dead_letter_keeps_body_headers_and_reason() -> None:
    value, headers = dead_letter_record(record([("ce_id", b"1"), ("tidings-attempts", b"9")]), "not-json: x", 1)
    named = dict(headers)
    assert value == b"{}"
    assert named["ce_id"] == b"1"
    assert named[HEADER_REASON] == b"not-json: x"
    assert named[HEADER_ORIGIN] == b"p.events/2/41"
    assert named["tidings-attempts"] == b"1"


def test_a_dead_letter_too_large_to_produce_keeps_no_body_and_says_where_it_is() -> None:
    big = record([("ce_id", b"1")], b"x" * (MAX_MESSAGE_BYTES + 10))
    value, headers = dead_letter_record(big, "too-large: body is 1048586 bytes", 1)
    reason = dict(headers)[HEADER_REASON].decode()
    assert value == b""
    assert reason.startswith("too-large: body is 1048586 bytes")
    assert "p.events/2/41" in reason
