"""Events and the registry: wire identity, upcasting, and refusal with a named reason."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tidings.errors import ConfigurationError, Malformation, MalformedMessage
from tidings.events import Data, Event, Registry


class PriceSetV3(Event, type="test.price.set", version=3):
    sku: str
    amount_cents: int
    currency: str


class Other(Event, type="test.other"):
    value: int


def registry_with_upcasters() -> Registry:
    registry = Registry()
    registry.register(PriceSetV3)

    @registry.upcaster("test.price.set", 1)
    def v1_to_v2(data: Data) -> Data:  # v1 had a float price in euros
        return {"sku": data["sku"], "amount_cents": round(data["price"] * 100)}

    @registry.upcaster("test.price.set", 2)
    def v2_to_v3(data: Data) -> Data:  # v3 added the currency
        return {**data, "currency": "EUR"}

    return registry


def kind_of(call: object) -> Malformation:
    assert callable(call)
    with pytest.raises(MalformedMessage) as raised:
        call()
    return raised.value.kind


def test_class_statement_declares_type_and_version() -> None:
    assert (PriceSetV3.event_type, PriceSetV3.event_version) == ("test.price.set", 3)
    assert (Other.event_type, Other.event_version) == ("test.other", 1)


def test_version_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):

        class Bad(Event, type="test.bad", version=0):
            pass


def test_events_are_immutable_and_strict() -> None:
    event = Other(value=1)
    with pytest.raises(ValidationError):
        event.value = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Other(value=1, unexpected=True)  # type: ignore[call-arg]


def test_partition_key_defaults_to_subject() -> None:
    class Keyed(Event, type="test.keyed"):
        id: str

        def subject(self) -> str | None:
            return self.id

    assert Keyed(id="a").partition_key() == "a"
    assert Other(value=1).partition_key() is None


def test_decode_current_version() -> None:
    registry = registry_with_upcasters()
    event = registry.decode("test.price.set", 3, b'{"sku": "s", "amount_cents": 5, "currency": "USD"}')
    assert event == PriceSetV3(sku="s", amount_cents=5, currency="USD")


def test_upcasting_from_v1_through_v2_to_v3() -> None:
    registry = registry_with_upcasters()
    assert registry.decode("test.price.set", 1, b'{"sku": "s", "price": 12.5}') == PriceSetV3(
        sku="s", amount_cents=1250, currency="EUR"
    )
    assert registry.decode("test.price.set", 2, b'{"sku": "s", "amount_cents": 7}') == PriceSetV3(
        sku="s", amount_cents=7, currency="EUR"
    )


def test_missing_upcaster_is_an_unknown_type() -> None:
    registry = Registry()
    registry.register(PriceSetV3)
    assert kind_of(lambda: registry.decode("test.price.set", 2, b"{}")) is Malformation.UNKNOWN_TYPE


def test_unknown_type_and_newer_version_are_refused() -> None:
    registry = registry_with_upcasters()
    assert kind_of(lambda: registry.decode("test.nope", 1, b"{}")) is Malformation.UNKNOWN_TYPE
    assert kind_of(lambda: registry.event_class("test.nope")) is Malformation.UNKNOWN_TYPE
    with pytest.raises(MalformedMessage, match="newer"):
        registry.decode("test.price.set", 4, b"{}")


def test_schema_mismatch_and_bad_json() -> None:
    registry = registry_with_upcasters()
    current = b'{"sku": "s", "amount_cents": "lots", "currency": "EUR"}'
    assert kind_of(lambda: registry.decode("test.price.set", 3, current)) is Malformation.SCHEMA_MISMATCH
    assert kind_of(lambda: registry.decode("test.price.set", 3, b"{oops")) is Malformation.NOT_JSON
    assert kind_of(lambda: registry.decode("test.price.set", 1, b"{oops")) is Malformation.NOT_JSON
    assert kind_of(lambda: registry.decode("test.price.set", 1, b"[1]")) is Malformation.SCHEMA_MISMATCH
    upcast_but_wrong = b'{"sku": "s", "price": "cheap"}'
    with pytest.raises(TypeError):  # an upcaster's own bug is not the message's fault
        registry.decode("test.price.set", 1, upcast_but_wrong)
    missing_after_upcast = b'{"sku": "s", "amount_cents": null}'
    assert kind_of(lambda: registry.decode("test.price.set", 2, missing_after_upcast)) is Malformation.SCHEMA_MISMATCH


def test_schema_mismatch_names_the_field() -> None:
    registry = registry_with_upcasters()
    with pytest.raises(MalformedMessage, match="amount_cents"):
        registry.decode("test.price.set", 3, b'{"sku": "s", "currency": "EUR"}')


def test_deeply_nested_data_is_too_large() -> None:
    registry = registry_with_upcasters()
    deep = b"[" * 5_000 + b"]" * 5_000
    data = b'{"sku": "s", "amount_cents": 1, "currency": "EUR", "x": ' + deep + b"}"
    assert kind_of(lambda: registry.decode("test.price.set", 3, data)) is Malformation.TOO_LARGE
    assert kind_of(lambda: registry.decode("test.price.set", 1, b"[" * 100_000 + b"]" * 100_000)) is (
        Malformation.TOO_LARGE
    )


def test_schema_mismatch_cuts_a_field_name_from_the_input_short() -> None:
    registry = registry_with_upcasters()
    data = json.dumps({"sku": "s", "amount_cents": 1, "currency": "EUR", "k" * 100_000: "secret"}).encode()
    with pytest.raises(MalformedMessage) as raised:
        registry.decode("test.price.set", 3, data)
    assert raised.value.kind is Malformation.SCHEMA_MISMATCH
    assert "kkkk" in str(raised.value)
    assert len(str(raised.value)) < 300
    assert "secret" not in str(raised.value)


def test_duplicate_registration() -> None:
    registry = Registry()
    assert registry.register(Other) is Other
    assert registry.register(Other) is Other  # the same class again is harmless

    class Impostor(Event, type="test.other"):
        value: int

    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(Impostor)
    assert registry.types() == ["test.other"]


def test_register_needs_a_type() -> None:
    class Base(Event):
        pass

    with pytest.raises(ConfigurationError, match="no type"):
        Registry().register(Base)
