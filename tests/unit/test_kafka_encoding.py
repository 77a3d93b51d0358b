"""The Kafka transport's record encoding is binary-mode CloudEvents exactly as the shared codec
writes it: the same headers in the same order, UTF-8, the partition key as the record key, and
every envelope decodes back to itself."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from tidings.envelope import Envelope, decode, to_binary
from tidings.transport.kafka.config import CE_PREFIX
from tidings.transport.kafka.encoding import record_parts

text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
optional = st.none() | text
names = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True).filter(
    lambda name: (
        name
        not in {"id", "source", "type", "specversion", "time", "subject", "datacontenttype", "dataschema"}
        | {"correlationid", "causationid", "traceparent", "partitionkey", "data"}
    )
)

envelopes = st.builds(
    Envelope,
    id=text,
    source=text,
    type=text,
    data=st.just(b'{"n":1}'),
    time=st.none() | st.datetimes(timezones=st.just(UTC)),
    subject=optional,
    dataschema=optional,
    correlationid=optional,
    causationid=optional,
    traceparent=optional,
    partitionkey=optional,
    extensions=st.dictionaries(names, text, max_size=3),
)


@given(envelopes)
def test_the_headers_are_the_shared_codecs_binary_mode_in_its_order(envelope: Envelope) -> None:
    key, value, headers = record_parts(envelope)
    expected, body = to_binary(envelope, CE_PREFIX)
    assert headers == [(name, item.encode()) for name, item in expected.items()]
    assert value == body
    assert key == (envelope.partitionkey.encode() if envelope.partitionkey is not None else None)


def test_an_envelope_decodes_back_to_itself() -> None:
    envelope = Envelope(
        id="e-1",
        source="shop",
        type="shop.order.created",
        data=b'{"n":1}',
        time=datetime(2026, 12, 2, 3, 4, 5, tzinfo=UTC),
        partitionkey="order-7",
        correlationid="c-1",
        extensions={"tenant": "t1"},
    )
    _, value, headers = record_parts(envelope)
    assert decode(headers, value, CE_PREFIX) == envelope
