"""Reservation rules, free of I/O: hold every line of an order or none of them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.contracts import ReservedLine


@dataclass(frozen=True, slots=True)
class Level:
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def shortages(levels: Mapping[str, Level], lines: Iterable[ReservedLine]) -> list[ReservedLine]:
    """The lines that cannot be held, with the missing quantity; empty means all can be.

    Quantities of a sku that appears on several lines add up; an unknown sku lacks everything.
    """
    wanted: dict[str, int] = {}
    for line in lines:
        wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
    short = []
    for sku, quantity in sorted(wanted.items()):
        level = levels.get(sku)
        available = level.available if level is not None else 0
        if quantity > available:
            short.append(ReservedLine(sku=sku, quantity=quantity - max(0, available)))
    return short
