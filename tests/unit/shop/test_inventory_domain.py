"""Reservation is all or nothing: `shortages` names every line that cannot be held."""

from __future__ import annotations

from services.contracts import ReservedLine
from services.inventory.domain import Level, shortages


def line(sku: str, quantity: int) -> ReservedLine:
    return ReservedLine(sku=sku, quantity=quantity)


def test_everything_available_means_no_shortage() -> None:
    levels = {"A": Level(on_hand=5, reserved=2), "B": Level(on_hand=1, reserved=0)}
    assert shortages(levels, [line("A", 3), line("B", 1)]) == []


def test_one_short_line_is_reported_with_the_missing_quantity() -> None:
    levels = {"A": Level(on_hand=5, reserved=0), "B": Level(on_hand=4, reserved=3)}
    assert shortages(levels, [line("A", 5), line("B", 3)]) == [line("B", 2)]


def test_reserved_units_are_not_available() -> None:
    assert shortages({"A": Level(on_hand=10, reserved=10)}, [line("A", 1)]) == [line("A", 1)]


def test_unknown_sku_lacks_everything() -> None:
    assert shortages({}, [line("GHOST", 2)]) == [line("GHOST", 2)]


def test_quantities_of_one_sku_on_several_lines_add_up() -> None:
    assert shortages({"A": Level(on_hand=3, reserved=0)}, [line("A", 2), line("A", 2)]) == [line("A", 1)]


def test_oversold_level_reports_the_whole_quantity() -> None:
    assert shortages({"A": Level(on_hand=1, reserved=3)}, [line("A", 2)]) == [line("A", 2)]
