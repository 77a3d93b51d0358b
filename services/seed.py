"""The shop's seed data: catalog prices, opening stock and opening balances.

Each service seeds only its own part (orders the catalog, inventory the stock, payments the
accounts), once, at start. The load generator picks customers and skus from here so that every
path of the flow happens: most orders succeed, some hit a sku with little or no stock, some
come from customers who cannot pay.
"""

from __future__ import annotations

from decimal import Decimal

CATALOG: dict[str, Decimal] = {
    "SKU-TEA": Decimal("4.50"),
    "SKU-COFFEE": Decimal("12.90"),
    "SKU-MUG": Decimal("8.00"),
    "SKU-KETTLE": Decimal("39.99"),
    "SKU-FILTER": Decimal("2.25"),
    "SKU-GRINDER": Decimal("59.00"),
    "SKU-SPOON": Decimal("1.10"),
    "SKU-TRAY": Decimal("17.35"),
    "SKU-LIMITED": Decimal("99.00"),
    "SKU-BACKORDER": Decimal("15.00"),
}
"""Prices the orders service charges; every order line is priced from here when placed."""

PLENTIFUL = 1_000_000
STOCK: dict[str, int] = {sku: PLENTIFUL for sku in CATALOG}
STOCK["SKU-LIMITED"] = 25
"""Runs out during a load run: the first orders get it, later ones fail to reserve."""
STOCK["SKU-BACKORDER"] = 0
"""Never in stock: every order for it is cancelled as out of stock."""

LEGACY_SKU = "SKU-LEGACY"
"""The one line of an order from the legacy order system, priced at the amount it sent; not in
the catalog, so the API never sells it (services/orders/legacy.py)."""
STOCK[LEGACY_SKU] = PLENTIFUL

REGULAR_SKUS = tuple(sku for sku, units in STOCK.items() if units == PLENTIFUL and sku != LEGACY_SKU)
SCARCE_SKUS = ("SKU-LIMITED", "SKU-BACKORDER")

SOLVENT_CUSTOMERS = tuple(f"customer-{n:03d}" for n in range(1, 21))
BROKE_CUSTOMERS = ("customer-broke-1", "customer-broke-2", "customer-broke-3")
ACCOUNTS: dict[str, Decimal] = {name: Decimal("1000000.00") for name in SOLVENT_CUSTOMERS}
ACCOUNTS.update({name: Decimal("1.00") for name in BROKE_CUSTOMERS})
LEGACY_CUSTOMER = "customer-legacy"
"""Who pays for the legacy order system's orders (it sends no customer)."""
ACCOUNTS[LEGACY_CUSTOMER] = Decimal("1000000.00")
"""Opening balances; a customer with no account here cannot pay at all."""
