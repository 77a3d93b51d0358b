"""The CloudEvents envelope: both codecs round-trip, decode picks the mode, every malformation is named."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tidings.envelope import (
    JSON,
    MAX_ATTRIBUTE_CHARS,
    MAX_ID_LENGTH,
    MAX_MESSAGE_BYTES,
    MAX_SOURCE_LENGTH,
    STRUCTURED,
    Envelope,
    decode,
    from_binary,
    from_structured,
    to_binary,
    to_structured,
)
from tidings.errors import Malformation, MalformedMessage
from tidings.events import Event


class OrderPlaced(Event, type="test.order.placed", version=3):
    order_id: str
    total: int

    def subject(self) -> str | None:
        return self.order_id


def full() -> Envelope:
    """An envelope with every optional attribute and an extension set."""
    envelope = Envelope.wrap(
        OrderPlaced(order_id="o-1", total=1250),
        source="orders",
        correlationid="corr-1",
        causationid="cause-1",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    return envelope.with_changes(extensions={"tenant": "acme"})


def test_wrap_fills_the_attributes() -> None:
    before = datetime.now(UTC)
    envelope = Envelope.wrap(OrderPlaced(order_id="o-1", total=5), source="orders")
    after = datetime.now(UTC)
    assert envelope.type == "test.order.placed"
    assert envelope.version == 3
    assert envelope.dataschema == "urn:tidings:test.order.placed:3"
    assert envelope.subject == envelope.partitionkey == "o-1"
    assert envelope.correlationid == envelope.id  # a new business transaction
    assert envelope.causationid is None
    assert envelope.datacontenttype == JSON
    assert envelope.time is not None
    assert before <= envelope.time <= after  # when it was wrapped, in UTC (naive times would not compare)
    assert json.loads(envelope.data) == {"order_id": "o-1", "total": 5}


def test_wrap_refuses_data_over_the_limit() -> None:
    class Blob(Event, type="test.blob"):
        text: str

    with pytest.raises(MalformedMessage) as raised:
        Envelope.wrap(Blob(text="x" * MAX_MESSAGE_BYTES), source="s")
    assert raised.value.kind is Malformation.TOO_LARGE


@pytest.mark.parametrize("prefix", ["ce_", "cloudEvents:"])
def test_binary_round_trip(prefix: str) -> None:
    envelope = full()
    headers, body = to_binary(envelope, prefix)
    assert body == envelope.data
    assert headers["content-type"] == JSON
    assert headers[prefix + "tenant"] == "acme"
    assert prefix + "datacontenttype" not in headers
    assert from_binary(headers, body, prefix) == envelope


def test_binary_accepts_bytes_header_values() -> None:
    envelope = full()
    headers, body = to_binary(envelope, "ce_")
    raw = {key: value.encode() for key, value in headers.items()}
    assert from_binary(raw, body, "ce_") == envelope


def test_structured_round_trip() -> None:
    envelope = full()
    document = to_structured(envelope)
    parsed = json.loads(document)
    assert parsed["data"] == {"order_id": "o-1", "total": 1250}
    assert parsed["tenant"] == "acme"
    assert from_structured(document) == envelope


def test_minimal_envelope_round_trips_both_ways() -> None:
    envelope = Envelope(id="1", source="s", type="t", data=b"{}")
    assert from_structured(to_structured(envelope)) == envelope
    assert from_binary(*to_binary(envelope, "ce_"), "ce_") == envelope
    assert envelope.version == 1  # no dataschema: version 1


def test_decode_detects_the_mode() -> None:
    envelope = full()
    headers, body = to_binary(envelope, "ce_")
    assert decode(headers, body, "ce_") == envelope
    assert decode({"content-type": STRUCTURED}, to_structured(envelope), "ce_") == envelope
    assert decode({}, to_structured(envelope), "ce_") == envelope  # no attributes in headers
    assert decode({"content-type": STRUCTURED.encode()}, to_structured(envelope), "ce_") == envelope


def test_decode_reads_header_pairs_as_protocols_hand_them_over() -> None:
    """Kafka gives a list of (name, bytes) pairs; foreign headers are ignored, extensions kept."""
    envelope = full()
    headers, body = to_binary(envelope, "ce_")
    pairs = [("traceid", b"x"), *((key, value.encode()) for key, value in headers.items())]
    decoded = decode(pairs, body, "ce_")
    assert decoded == envelope
    assert decoded.extensions == {"tenant": "acme"}
    assert decode([("content-type", STRUCTURED.encode())], to_structured(envelope), "ce_") == envelope
    with pytest.raises(MalformedMessage) as caught:
        decode([(key, value) for key, value in pairs if key != "ce_source"], body, "ce_")
    assert caught.value.kind is Malformation.MISSING_ATTRIBUTE
    assert "source" in str(caught.value)


def test_time_keeps_its_timezone() -> None:
    moment = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    envelope = Envelope(id="1", source="s", type="t", data=b"{}", time=moment)
    assert from_structured(to_structured(envelope)).time == moment


def malformed(call: object) -> Malformation:
    assert callable(call)
    with pytest.raises(MalformedMessage) as raised:
        call()
    assert str(raised.value).startswith(raised.value.kind.value + ": ")
    return raised.value.kind


def test_every_malformation_is_named() -> None:
    headers, body = to_binary(full(), "ce_")
    without_source = {key: value for key, value in headers.items() if key != "ce_source"}
    assert malformed(lambda: from_structured(b"{not json")) is Malformation.NOT_JSON
    assert malformed(lambda: from_structured(b"[1, 2]")) is Malformation.MISSING_ATTRIBUTE
    assert malformed(lambda: from_structured(b'{"id": "1", "type": "t"}')) is Malformation.MISSING_ATTRIBUTE
    assert malformed(lambda: from_binary(without_source, body, "ce_")) is Malformation.MISSING_ATTRIBUTE
    bad_version = {**headers, "ce_specversion": "0.3"}
    assert malformed(lambda: from_binary(bad_version, body, "ce_")) is Malformation.INVALID_ATTRIBUTE
    bad_time = {**headers, "ce_time": "last tuesday"}
    assert malformed(lambda: from_binary(bad_time, body, "ce_")) is Malformation.INVALID_ATTRIBUTE
    bad_schema = Envelope(id="1", source="s", type="t", data=b"{}", dataschema="urn:tidings:t:latest")
    assert malformed(lambda: bad_schema.version) is Malformation.INVALID_ATTRIBUTE
    huge = b" " * (MAX_MESSAGE_BYTES + 1)
    assert malformed(lambda: from_binary(headers, huge, "ce_")) is Malformation.TOO_LARGE
    assert malformed(lambda: from_structured(huge)) is Malformation.TOO_LARGE
    assert malformed(lambda: decode(headers, huge, "ce_")) is Malformation.TOO_LARGE


def test_an_id_or_source_longer_than_a_store_holds_is_malformed_in_both_modes() -> None:
    headers, body = to_binary(full(), "ce_")
    for name, limit in (("id", MAX_ID_LENGTH), ("source", MAX_SOURCE_LENGTH)):
        long = {**headers, f"ce_{name}": "x" * (limit + 1)}
        with pytest.raises(MalformedMessage) as raised:
            from_binary(long, body, "ce_")
        assert raised.value.kind is Malformation.INVALID_ATTRIBUTE
        assert raised.value.detail == f"{name} is {limit + 1} characters, the limit is {limit}"
        document = json.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "t", name: "x" * (limit + 1)})
        assert malformed(lambda document=document: from_structured(document.encode())) is Malformation.INVALID_ATTRIBUTE
        at_limit = {**headers, f"ce_{name}": "é" * limit}  # characters, not bytes
        assert getattr(from_binary(at_limit, body, "ce_"), name) == "é" * limit


def test_a_foreign_dataschema_means_version_one() -> None:
    envelope = Envelope(id="1", source="s", type="t", data=b"{}", dataschema="https://example.com/schema.json")
    assert envelope.version == 1


def test_binary_mode_does_not_parse_the_data() -> None:
    headers, _ = to_binary(full(), "ce_")
    assert from_binary(headers, b"not json at all", "ce_").data == b"not json at all"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "text/json", "application/vnd.shop+json"])
def test_json_content_types_are_accepted(content_type: str) -> None:
    headers, body = to_binary(full(), "ce_")
    assert decode({**headers, "content-type": content_type}, body, "ce_").datacontenttype == content_type


@pytest.mark.parametrize("content_type", ["application/xml", "text/plain", "application/octet-stream"])
def test_data_that_is_not_json_is_refused(content_type: str) -> None:
    """Event data is read as JSON only: JSON bytes labelled otherwise are not what their sender said."""
    headers, body = to_binary(full(), "ce_")
    with pytest.raises(MalformedMessage, match="datacontenttype") as raised:
        decode({**headers, "content-type": content_type}, body, "ce_")
    assert raised.value.kind is Malformation.INVALID_ATTRIBUTE
    document = {**json.loads(to_structured(full())), "datacontenttype": content_type}
    assert malformed(lambda: from_structured(json.dumps(document).encode())) is Malformation.INVALID_ATTRIBUTE


def test_attributes_over_the_limit_are_too_large() -> None:
    headers, body = to_binary(full(), "ce_")
    one = {**headers, "ce_comment": "x" * MAX_ATTRIBUTE_CHARS}
    many = {**headers, **{f"ce_ext{n}": "v" * 100 for n in range(MAX_ATTRIBUTE_CHARS // 100)}}
    for huge in (one, many):
        with pytest.raises(MalformedMessage, match="attributes are") as raised:
            decode(huge, body, "ce_")
        assert raised.value.kind is Malformation.TOO_LARGE
    assert decode({**headers, "ce_comment": "x" * 1000}, body, "ce_").extensions["comment"] == "x" * 1000


def test_deeply_nested_structured_json_is_too_large_not_a_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert malformed(lambda: from_structured(deep)) is Malformation.TOO_LARGE
    document = to_structured(full())
    assert malformed(lambda: from_structured(document[:-1] + b',"x":' + deep + b"}")) is Malformation.TOO_LARGE


def test_reasons_cut_long_attribute_values_short() -> None:
    headers, body = to_binary(full(), "ce_")
    with pytest.raises(MalformedMessage) as raised:
        decode({**headers, "ce_time": "t" * 10_000}, body, "ce_")
    assert raised.value.kind is Malformation.INVALID_ATTRIBUTE
    assert len(str(raised.value)) < 200
