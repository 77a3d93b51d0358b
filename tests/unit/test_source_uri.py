"""`source` as an absolute URI: the default `urn:tidings:<service>`, a configured one, what is
refused, and which sources a signing key vouches for (its own, and for a key that names a service,
that service's default URI, so key rings from before the change stay valid)."""

from __future__ import annotations

import pytest

from tidings.context import Context, service_source
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.events import Event
from tidings.runtime.unit_of_work import UnitOfWork
from tidings.security import Key, KeyRing, Refusal, SignatureRefused, Signer, Verifier
from tidings.security.signing import Signing, signs_for
from tidings.service import Service


class Shipped(Event, type="test.source.shipped", version=1):
    order_id: str


async def _nothing(envelopes: list[Envelope]) -> None:
    raise AssertionError("not published in these tests")


def test_a_service_source_is_urn_tidings_and_its_name_by_default() -> None:
    service = Service("orders", broker="memory://source-default")
    assert (service.name, service.source) == ("orders", "urn:tidings:orders")
    assert Context("orders").publish(Shipped(order_id="o-1")).source == "urn:tidings:orders"


def test_a_configured_source_is_what_the_events_carry() -> None:
    service = Service("orders", broker="memory://source-configured", source="https://shop.example.com/orders")
    assert service.source == "https://shop.example.com/orders"
    context = Context("orders", source=service.source)
    assert context.publish(Shipped(order_id="o-1")).source == "https://shop.example.com/orders"


@pytest.mark.parametrize("bad", ["orders", "/orders", "urn:", "https://shop example/orders", "urn:" + "x" * 200])
def test_a_source_that_is_not_an_absolute_uri_is_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="must be an absolute URI"):
        service_source("orders", bad)


@pytest.mark.parametrize(
    ("key_source", "source", "vouched"),
    [
        ("orders", "orders", True),  # events published before the change
        ("orders", "urn:tidings:orders", True),  # the default URI of the service the key names
        ("orders", "urn:tidings:payments", False),
        ("orders", "https://shop.example.com/orders", False),
        ("urn:tidings:orders", "urn:tidings:orders", True),
        ("urn:tidings:orders", "orders", False),
        ("https://shop.example.com/orders", "https://shop.example.com/orders", True),
    ],
)
def test_which_sources_a_key_signs_for(key_source: str, source: str, vouched: bool) -> None:
    key = Key.generate("k-1", key_source, "hmac-sha256")
    assert signs_for(key, source) is vouched
    envelope = Envelope.wrap(Shipped(order_id="o-1"), source=source)
    if vouched:
        assert Verifier(KeyRing([key.public_only()])).check(Signer(key).sign(envelope)) == key.public_only()
        return
    with pytest.raises(ConfigurationError, match="signs for source"):
        Signer(key).sign(envelope)
    forged = Signer(Key.generate("k-1", source, "hmac-sha256")).sign(envelope)  # same id, other source
    with pytest.raises(SignatureRefused) as refused:
        Verifier(KeyRing([key.public_only()])).check(forged)
    assert refused.value.kind is Refusal.WRONG_SOURCE


def test_a_service_is_refused_a_key_that_does_not_sign_for_its_source() -> None:
    key = Key.generate("k-1", "orders", "hmac-sha256")
    UnitOfWork("orders", None, publish=_nothing, committed=lambda _: None, signing=Signing(key=key))
    with pytest.raises(ConfigurationError, match=r"source 'https://shop.example.com/orders'.*signs for 'orders'"):
        UnitOfWork(
            "orders",
            None,
            "https://shop.example.com/orders",
            publish=_nothing,
            committed=lambda _: None,
            signing=Signing(key=key),
        )
