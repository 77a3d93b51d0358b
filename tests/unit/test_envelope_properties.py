"""Properties of the envelope codecs (hypothesis): any valid envelope survives binary mode under each
broker's header prefix and structured mode unchanged, and any malformed input raises the one error
type, `MalformedMessage`, never anything else."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.envelope import Envelope, decode, from_binary, from_structured, to_binary, to_structured
from tidings.errors import MalformedMessage

PREFIXES = {"sqlite": "ce_", "kafka": "ce_", "rabbitmq": "cloudEvents_"}
"""The binary-mode header prefixes the adapters use (their codecs' `PREFIX`/`CE_PREFIX`)."""
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    optional = st.none() | TEXT
    moment = draw(st.none() | st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1)))
    extension_names = st.from_regex(r"\A[a-z][a-z0-9]{0,10}\Z").filter(lambda name: name not in _TAKEN)
    return Envelope(
        id=draw(TEXT),
        source=draw(TEXT),
        type=draw(TEXT),
        data=json.dumps(draw(JSON_VALUES), separators=(",", ":"), ensure_ascii=False).encode(),
        time=moment,
        subject=draw(optional),
        correlationid=draw(optional),
        causationid=draw(optional),
        partitionkey=draw(optional),
        dataschema=draw(st.none() | st.builds(lambda n: f"urn:tidings:t:{n}", st.integers(1, 99))),
        extensions=draw(st.dictionaries(extension_names, TEXT, max_size=3)),
    )


_TAKEN = {
    "id", "source", "type", "specversion", "data", "time", "subject", "datacontenttype", "dataschema",
    "correlationid", "causationid", "traceparent", "partitionkey",
}  # fmt: skip


def same(decoded: Envelope, sent: Envelope) -> None:
    """Equal attributes, and data that is the same JSON value (structured mode re-serialises it)."""
    assert decoded.attributes() == sent.attributes()
    assert json.loads(decoded.data) == json.loads(sent.data)


@settings(max_examples=60, deadline=None)
@pytest.mark.parametrize("broker", sorted(PREFIXES))
@given(envelope=envelopes())
def test_any_valid_envelope_round_trips_in_binary_mode(broker: str, envelope: Envelope) -> None:
    headers, body = to_binary(envelope, PREFIXES[broker])
    same(from_binary(headers, body, PREFIXES[broker]), envelope)
    same(decode(headers, body, PREFIXES[broker]), envelope)  # what the adapters call on receipt
    encoded = {name: value.encode() for name, value in headers.items()}  # Kafka's header values are bytes
    same(decode(list(encoded.items()), body, PREFIXES[broker]), envelope)


@settings(max_examples=60, deadline=None)
@given(envelope=envelopes())
def test_any_valid_envelope_round_trips_in_structured_mode(envelope: Envelope) -> None:
    body = to_structured(envelope)
    same(from_structured(body), envelope)
    same(decode({"content-type": "application/cloudevents+json"}, body, "ce_"), envelope)


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=200) | st.builds(lambda v: json.dumps(v).encode(), JSON_VALUES))
def test_any_malformed_structured_body_raises_malformed_message(body: bytes) -> None:
    with pytest.raises(MalformedMessage):  # the one error type: the runtime dead-letters it with the reason
        from_structured(body)


HEADERS = st.sampled_from(["ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "content-type", "ce_x"])


@settings(max_examples=100, deadline=None)
@given(headers=st.dictionaries(HEADERS, TEXT), body=st.binary(max_size=100))
def test_any_malformed_binary_message_raises_malformed_message(headers: dict[str, str], body: bytes) -> None:
    with contextlib.suppress(MalformedMessage):  # anything else fails the test
        decode(headers, body, "ce_")
