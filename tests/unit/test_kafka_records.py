"""What the Kafka transport reads from a record without decoding it: a record no one can read is
handed out (never skipped, never a crash), so the consumer dead-letters it with a reason."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tidings.envelope import STRUCTURED
from tidings.transport.kafka.cluster import record_type, relevant

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
