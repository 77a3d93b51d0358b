"""How a record of a Kafka legacy topic becomes an envelope (pure logic, no broker): stable ids
per record, the id field first, the record key as partition key, CloudEvents passed through,
and what is refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pytest

from tidings.envelope import Envelope, to_binary
from tidings.errors import ConfigurationError, MalformedMessage
from tidings.events import Event
from tidings.legacy import Ignore, LegacySource
from tidings.transport import connect
from tidings.transport.kafka.legacy import translate_record


class Weighed(Event, type="test.legacy.weighed", version=1):
    parcel: str
    grams: int


@dataclass(frozen=True)
class Record:
    """The attributes of an aiokafka `ConsumerRecord` the translation reads."""

    value: bytes
    topic: str = "scales"
    partition: int = 0
    offset: int = 7
    timestamp: int = 1_764_633_600_000
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def record(document: Any, **changes: Any) -> Record:
    return replace(Record(json.dumps(document).encode()), **changes)


SOURCE = LegacySource("scales", translate=Weighed)


def translated(source: LegacySource, item: Record) -> Envelope:
    result = translate_record(source, item)
    assert isinstance(result, Envelope)
    return result


def test_the_same_record_read_twice_has_the_same_id_and_another_record_another() -> None:
    first = record({"parcel": "p-1", "grams": 5})
    assert translated(SOURCE, first).id == translated(SOURCE, first).id
    assert translated(SOURCE, first).id != translated(SOURCE, replace(first, offset=8)).id
    recreated = replace(first, timestamp=first.timestamp + 1)  # a topic made again: offsets restart
    assert translated(SOURCE, first).id != translated(SOURCE, recreated).id


def test_the_id_field_names_the_event_and_the_record_time_is_its_time() -> None:
    source = LegacySource("scales", translate=Weighed, id_field="parcel")
    envelope = translated(source, record({"parcel": "p-1", "grams": 5}))
    assert envelope.id == "p-1"
    assert envelope.time is not None
    assert int(envelope.time.timestamp() * 1000) == Record(b"").timestamp
    assert envelope.source == "urn:tidings:legacy:scales"


def test_the_record_key_is_the_partition_key_when_the_event_names_none() -> None:
    envelope = translated(SOURCE, record({"parcel": "p-1", "grams": 5}, key=b"scale-3"))
    assert envelope.partitionkey == "scale-3"


def test_a_rename_rule_and_an_ignore_work_as_on_rabbitmq() -> None:
    renamed = LegacySource("scales", types={"Weighed": "test.legacy.weighed"})
    envelope = translated(renamed, record({"event_type": "Weighed", "parcel": "p-2", "grams": 1}))
    assert (envelope.type, json.loads(envelope.data)) == ("test.legacy.weighed", {"parcel": "p-2", "grams": 1})
    ignoring = LegacySource("scales", translate=lambda document: Ignore("tare"))
    assert translate_record(ignoring, record({})) == Ignore("tare")


def test_a_cloudevent_on_a_legacy_topic_passes_through() -> None:
    original = Envelope.wrap(Weighed(parcel="p-3", grams=2), source="urn:example:scale")
    headers, body = to_binary(original, "ce_")
    item = Record(body, headers=tuple((name, value.encode()) for name, value in headers.items()))
    envelope = translated(SOURCE, item)
    assert (envelope.id, envelope.source, envelope.type) == (original.id, original.source, original.type)


@pytest.mark.parametrize(
    ("value", "reason"),
    [(b"{not json", "body is not JSON"), (json.dumps({"parcel": "p-1"}).encode(), "grams: Field required")],
)
def test_what_is_refused_says_why(value: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        translate_record(SOURCE, Record(value))


async def test_two_sources_for_one_topic_are_refused_before_connecting() -> None:
    twice = [LegacySource("scales", translate=Weighed), LegacySource("scales", types={"A": "b.c"})]
    with pytest.raises(ConfigurationError, match="two legacy sources for one topic"):
        await connect("kafka://127.0.0.1:1", legacy=twice)  # nothing listens there: refused first
