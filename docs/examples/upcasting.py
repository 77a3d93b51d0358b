"""docs/how-to/versions.md: version 2 of an event, and the upcaster that reads version 1.

The suite runs `main()` (tests/integration/test_docs_snippets.py)."""

from tidings.envelope import Envelope
from tidings.events import Event, Registry

# --8<-- [start:versions]
registry = Registry()


class PriceSet(Event, type="shop.price.set", version=2):
    """Version 2 keeps the price in integer cents; version 1 had a decimal string `price`."""

    sku: str
    amount_cents: int


registry.register(PriceSet)


@registry.upcaster("shop.price.set", from_version=1)
def cents(data: dict[str, object]) -> dict[str, object]:
    return {"sku": data["sku"], "amount_cents": round(float(str(data["price"])) * 100)}


# --8<-- [end:versions]


class PriceSetV1(Event, type="shop.price.set", version=1):
    sku: str
    price: str


def main() -> PriceSet:
    """What a version-2 consumer makes of a version-1 producer's event."""
    old = Envelope.wrap(PriceSetV1(sku="SKU-TEA", price="4.50"), source="legacy-pricing")
    decoded = registry.decode(old.type, old.version, old.data)
    assert isinstance(decoded, PriceSet)
    return decoded
