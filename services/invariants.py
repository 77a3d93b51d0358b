"""The shop's cross-service invariants, as a pure function of what every database holds.

`Snapshot` is read by `services.check` from the five databases; `violations` says what is
wrong with it, one sentence per problem naming the ids involved. The rules (see
docs/shop.md): every order is settled; a confirmed order has exactly one captured payment of
its total, a committed reservation of exactly its lines, one shipment and one "confirmed"
notification; a cancelled order has no captured payment, no held or committed stock, no
shipment, and one "cancelled" notification; money and stock are conserved.

Beyond the business rows, the delivery rules ("nothing lost, nothing stuck"): every order the
load generator was told was accepted exists; no group holds dead letters or a backlog; no
service database holds an unpublished outbox row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from services.contracts import CancelReason


@dataclass(frozen=True, slots=True)
class OrderFacts:
    status: str
    customer_id: str
    total: Decimal
    lines: dict[str, int]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReservationFacts:
    status: str
    lines: dict[str, int]


@dataclass(frozen=True, slots=True)
class ChargeFacts:
    status: str
    customer_id: str
    amount: Decimal


@dataclass
class Snapshot:
    orders: dict[str, OrderFacts] = field(default_factory=dict)
    reservations: dict[str, ReservationFacts] = field(default_factory=dict)
    stock: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """sku -> (initial, on_hand, reserved)"""
    charges: dict[str, ChargeFacts] = field(default_factory=dict)
    accounts: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    """customer -> (opening balance, balance)"""
    shipments: dict[str, int] = field(default_factory=dict)
    """order -> number of shipments"""
    notifications: dict[str, list[str]] = field(default_factory=dict)
    """order -> kinds of the messages sent"""
    accepted: list[str] | None = None
    """Order ids the load generator got a 2xx for (None: no load run recorded any)."""
    dead_letters: dict[str, int] = field(default_factory=dict)
    """group -> dead letters it holds"""
    backlog: dict[str, int] = field(default_factory=dict)
    """group -> messages not yet acked"""
    outbox: dict[str, int] = field(default_factory=dict)
    """service -> unpublished outbox rows in its database"""
    unreadable: list[str] = field(default_factory=list)
    """What could not be read, so could not be verified (the broker's backlog, say)."""


def violations(snapshot: Snapshot) -> list[str]:
    """Every broken invariant, one line each; empty when the shop is consistent."""
    found: list[str] = []
    for order_id, order in sorted(snapshot.orders.items()):
        if order.status == "confirmed":
            found += _confirmed(snapshot, order_id, order)
        elif order.status == "cancelled":
            found += _cancelled(snapshot, order_id)
        else:
            found.append(f"order {order_id} is not settled: {order.status}")
    found += _orphans(snapshot)
    found += _stock_conserved(snapshot)
    found += _money_conserved(snapshot)
    found += delivery_violations(snapshot)
    return found


def delivery_violations(snapshot: Snapshot) -> list[str]:
    """Nothing lost (every accepted order exists), nothing stuck (no dead letter, no backlog, no
    unpublished outbox row), nothing unverifiable."""
    found = [f"cannot verify {what}" for what in snapshot.unreadable]
    missing = sorted(set(snapshot.accepted or ()) - set(snapshot.orders))
    for order_id in missing:
        found.append(f"accepted order {order_id} (a 2xx to the load generator) is not in the orders database")
    for group, count in sorted(snapshot.dead_letters.items()):
        if count:
            found.append(f"group {group} holds {count} dead letter(s)")
    for group, count in sorted(snapshot.backlog.items()):
        if count:
            found.append(f"group {group} has a backlog of {count} message(s)")
    for service, count in sorted(snapshot.outbox.items()):
        if count:
            found.append(f"service {service} has {count} unpublished outbox row(s)")
    return found


def _confirmed(snapshot: Snapshot, order_id: str, order: OrderFacts) -> list[str]:
    found = []
    charge = snapshot.charges.get(order_id)
    if charge is None or charge.status != "captured":
        found.append(f"confirmed order {order_id} has no captured payment ({charge.status if charge else 'none'})")
    elif charge.amount != order.total or charge.customer_id != order.customer_id:
        found.append(
            f"confirmed order {order_id} of {order.total} by {order.customer_id} was charged "
            f"{charge.amount} to {charge.customer_id}"
        )
    reservation = snapshot.reservations.get(order_id)
    if reservation is None or reservation.status != "committed":
        status = reservation.status if reservation else "none"
        found.append(f"confirmed order {order_id} has no committed stock decrement (reservation {status})")
    elif reservation.lines != order.lines:
        found.append(f"confirmed order {order_id} lines {order.lines} but stock decremented {reservation.lines}")
    shipments = snapshot.shipments.get(order_id, 0)
    if shipments != 1:
        found.append(f"confirmed order {order_id} has {shipments} shipments, not 1")
    kinds = snapshot.notifications.get(order_id, [])
    if kinds != ["confirmed"]:
        found.append(f"confirmed order {order_id} notifications {kinds}, expected ['confirmed']")
    return found


def _cancelled(snapshot: Snapshot, order_id: str) -> list[str]:
    found = []
    charge = snapshot.charges.get(order_id)
    if charge is not None and charge.status == "captured":
        found.append(f"cancelled order {order_id} has a captured, unrefunded payment of {charge.amount}")
    reservation = snapshot.reservations.get(order_id)
    if reservation is not None and reservation.status in ("reserved", "committed"):
        found.append(f"cancelled order {order_id} still has stock {reservation.status}: {reservation.lines}")
    if snapshot.shipments.get(order_id, 0):
        found.append(f"cancelled order {order_id} was shipped")
    kinds = snapshot.notifications.get(order_id, [])
    if kinds != ["cancelled"]:
        found.append(f"cancelled order {order_id} notifications {kinds}, expected ['cancelled']")
    return found


def _orphans(snapshot: Snapshot) -> list[str]:
    found = []
    for what, ids in (
        ("reservation", snapshot.reservations),
        ("payment", snapshot.charges),
        ("shipment", snapshot.shipments),
        ("notification", snapshot.notifications),
    ):
        for order_id in sorted(set(ids) - set(snapshot.orders)):
            found.append(f"{what} for unknown order {order_id}")
    return found


def _stock_conserved(snapshot: Snapshot) -> list[str]:
    committed: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    for reservation in snapshot.reservations.values():
        target = committed if reservation.status == "committed" else held if reservation.status == "reserved" else None
        if target is not None:
            for sku, quantity in reservation.lines.items():
                target[sku] += quantity
    found = []
    for sku, (initial, on_hand, reserved) in sorted(snapshot.stock.items()):
        if initial != on_hand + committed[sku]:
            found.append(
                f"stock of {sku} not conserved: seeded {initial} != on hand {on_hand} + shipped {committed[sku]}"
            )
        if reserved != held[sku] or reserved < 0 or on_hand < reserved:
            found.append(f"stock of {sku}: reserved {reserved}, held by reservations {held[sku]}, on hand {on_hand}")
    return found


def _money_conserved(snapshot: Snapshot) -> list[str]:
    captured: dict[str, Decimal] = defaultdict(Decimal)
    for charge in snapshot.charges.values():
        if charge.status == "captured":
            captured[charge.customer_id] += charge.amount
    found = []
    for customer, (opening, balance) in sorted(snapshot.accounts.items()):
        if opening != balance + captured[customer]:
            found.append(
                f"money of {customer} not conserved: "
                f"opening {opening} != balance {balance} + captured {captured[customer]}"
            )
        if balance < 0:
            found.append(f"account {customer} is overdrawn: {balance}")
    for customer in sorted(set(captured) - set(snapshot.accounts)):
        found.append(f"captured {captured[customer]} from {customer}, who has no account")
    return found


def totals(snapshot: Snapshot) -> dict[str, str]:
    """Headline figures for the report: orders by status, money and units moved."""
    by_status: dict[str, int] = defaultdict(int)
    for order in snapshot.orders.values():
        by_status[order.status] += 1
    opening = sum((o for o, _ in snapshot.accounts.values()), Decimal(0))
    balance = sum((b for _, b in snapshot.accounts.values()), Decimal(0))
    captured = sum((c.amount for c in snapshot.charges.values() if c.status == "captured"), Decimal(0))
    shipped = sum(initial - on_hand for initial, on_hand, _ in snapshot.stock.values())
    figures = {
        "orders": ", ".join(f"{status} {count}" for status, count in sorted(by_status.items())) or "none",
        "money": f"opening {opening} = balances {balance} + captured {captured}",
        "stock": f"{shipped} units shipped from {len(snapshot.stock)} skus",
        "deadline": f"{deadline_cancelled(snapshot)} of {len(snapshot.orders)} orders cancelled by the deadline "
        f"({deadline_share(snapshot):.1%})",
    }
    if snapshot.accepted is not None:
        found = len(set(snapshot.accepted) & set(snapshot.orders))
        figures["accepted"] = f"{found} of {len(set(snapshot.accepted))} orders accepted by the load generator found"
    return figures


def deadline_cancelled(snapshot: Snapshot) -> int:
    return sum(1 for order in snapshot.orders.values() if order.reason == CancelReason.DEADLINE_EXCEEDED)


def deadline_share(snapshot: Snapshot) -> float:
    """The share of orders the deadline cancelled (reported, not a violation: it is what a
    deadline is for, and faults make it happen)."""
    return deadline_cancelled(snapshot) / len(snapshot.orders) if snapshot.orders else 0.0
