"""The invariant rules on hand-built snapshots: a consistent shop passes, each kind of damage is named."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.invariants import ChargeFacts, OrderFacts, ReservationFacts, Snapshot, totals, violations

D = Decimal


def consistent() -> Snapshot:
    """One confirmed order (2 x A at 5.00) and one cancelled after its payment was refunded."""
    return Snapshot(
        orders={
            "o1": OrderFacts("confirmed", "c1", D("10.00"), {"A": 2}),
            "o2": OrderFacts("cancelled", "c1", D("5.00"), {"A": 1}),
        },
        reservations={"o1": ReservationFacts("committed", {"A": 2}), "o2": ReservationFacts("released", {"A": 1})},
        stock={"A": (10, 8, 0)},
        charges={"o1": ChargeFacts("captured", "c1", D("10.00")), "o2": ChargeFacts("refunded", "c1", D("5.00"))},
        accounts={"c1": (D("100.00"), D("90.00"))},
        shipments={"o1": 1},
        notifications={"o1": ["confirmed"], "o2": ["cancelled"]},
    )


def test_a_consistent_shop_has_no_violations() -> None:
    assert violations(consistent()) == []
    assert totals(consistent())["money"] == "opening 100.00 = balances 90.00 + captured 10.00"


def test_pending_order_is_unsettled() -> None:
    snapshot = consistent()
    snapshot.orders["o3"] = OrderFacts("pending", "c1", D("1.00"), {"A": 1})
    snapshot.notifications["o3"] = []
    assert "order o3 is not settled: pending" in violations(snapshot)


def test_cancelled_order_with_a_captured_payment_is_a_net_charge() -> None:
    snapshot = consistent()
    snapshot.charges["o2"] = ChargeFacts("captured", "c1", D("5.00"))
    snapshot.accounts["c1"] = (D("100.00"), D("85.00"))
    found = violations(snapshot)
    assert any("cancelled order o2 has a captured" in line for line in found)


def test_cancelled_order_still_holding_stock() -> None:
    snapshot = consistent()
    snapshot.reservations["o2"] = ReservationFacts("reserved", {"A": 1})
    snapshot.stock["A"] = (10, 8, 1)
    assert any("cancelled order o2 still has stock reserved" in line for line in violations(snapshot))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda s: s.shipments.pop("o1"), "confirmed order o1 has 0 shipments"),
        (lambda s: s.shipments.update(o1=2), "confirmed order o1 has 2 shipments"),
        (lambda s: s.notifications.update(o1=[]), "confirmed order o1 notifications []"),
        (lambda s: s.charges.pop("o1"), "confirmed order o1 has no captured payment"),
        (lambda s: s.reservations.update(o1=ReservationFacts("committed", {"A": 1})), "stock decremented"),
        (lambda s: s.stock.update(A=(10, 9, 0)), "stock of A not conserved"),
        (lambda s: s.accounts.update(c1=(D("100.00"), D("95.00"))), "money of c1 not conserved"),
        (lambda s: s.shipments.update(ghost=1), "shipment for unknown order ghost"),
    ],
)
def test_each_kind_of_damage_is_named(damage: object, expected: str) -> None:
    snapshot = consistent()
    damage(snapshot)  # type: ignore[operator]
    assert any(expected in line for line in violations(snapshot)), violations(snapshot)


def test_delivery_left_overs_are_one_violation_each() -> None:
    snapshot = consistent()
    snapshot.accepted = ["o1", "o2", "lost"]
    snapshot.dead_letters = {"shipping": 2, "orders": 0}
    snapshot.backlog = {"inventory": 3, "payments": 0}
    snapshot.outbox = {"orders": 1, "payments": 0}
    snapshot.unreadable = ["the groups' backlog on the broker: connection refused"]
    assert violations(snapshot) == [
        "cannot verify the groups' backlog on the broker: connection refused",
        "accepted order lost (a 2xx to the load generator) is not in the orders database",
        "group shipping holds 2 dead letter(s)",
        "group inventory has a backlog of 3 message(s)",
        "service orders has 1 unpublished outbox row(s)",
    ]
    assert totals(snapshot)["accepted"] == "2 of 3 orders accepted by the load generator found"


def test_deadline_cancellations_are_reported_not_violations() -> None:
    snapshot = consistent()
    snapshot.orders["o2"] = OrderFacts("cancelled", "c1", D("5.00"), {"A": 1}, "deadline-exceeded")
    assert violations(snapshot) == []
    assert totals(snapshot)["deadline"] == "1 of 2 orders cancelled by the deadline (50.0%)"
    assert "accepted" not in totals(snapshot)  # no load run recorded accepted orders
