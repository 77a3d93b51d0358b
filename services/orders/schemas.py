"""The HTTP API's request and response bodies (the public shape of an order)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.orders.models import OrderStatus

NAME_PATTERN = r"^[A-Za-z0-9._:-]+$"
"""Customer ids, skus and order ids: what the shop stores (no NUL, which PostgreSQL text cannot hold)."""
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]


def as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC time (a naive one is taken as UTC); out of range once in UTC is invalid."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


class LineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Name
    quantity: int = Field(gt=0, le=1000, description="Units of the sku, 1 to 1000.")


class OrderRequest(BaseModel):
    """What a customer sends to place an order; prices come from the catalog, not the client."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"customer_id": "customer-001", "lines": [{"sku": "SKU-TEA", "quantity": 2}]}]},
    )

    customer_id: Name
    lines: list[LineRequest] = Field(min_length=1, max_length=50)

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, lines: list[LineRequest]) -> list[LineRequest]:
        skus = [line.sku for line in lines]
        if len(set(skus)) != len(skus):
            raise ValueError("each sku may appear on one line only")
        return lines


class OrderColumns(Protocol):
    """What a view is made of: an order's row (a Core `Row` or an ORM `Order`)."""

    order_id: str
    customer_id: str
    status: str
    total: Decimal
    reason: str | None
    detail: str
    created_at: datetime
    deadline: datetime
    settled_at: datetime | None


class LineColumns(Protocol):
    """An order line's row (a Core `Row` or an ORM `OrderLine`)."""

    sku: str
    quantity: int
    unit_price: Decimal


class LineView(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal


class OrderView(BaseModel):
    order_id: str
    customer_id: str
    status: OrderStatus
    total: Decimal
    reason: str | None
    detail: str
    lines: list[LineView]
    created_at: datetime
    deadline: datetime
    settled_at: datetime | None

    @classmethod
    def pending(cls, order: dict[str, Any], lines: list[dict[str, Any]]) -> OrderView:
        """The view of an order just placed, from the columns `add_order` wrote."""
        return cls(
            **{name: order[name] for name in ("order_id", "customer_id", "status", "total", "created_at", "deadline")},
            reason=None,
            detail="",
            lines=[
                LineView(sku=line["sku"], quantity=line["quantity"], unit_price=line["unit_price"]) for line in lines
            ],
            settled_at=None,
        )

    @classmethod
    def of(cls, order: OrderColumns, lines: Sequence[LineColumns]) -> OrderView:
        return cls(
            order_id=order.order_id,
            customer_id=order.customer_id,
            status=OrderStatus(order.status),
            total=order.total,
            reason=order.reason,
            detail=order.detail,
            lines=[LineView(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price) for line in lines],
            created_at=order.created_at,
            deadline=order.deadline,
            settled_at=order.settled_at,
        )


class OrderList(BaseModel):
    orders: list[OrderView]
    count: int


class CatalogEntry(BaseModel):
    sku: str
    unit_price: Decimal


class Problem(BaseModel):
    """What a refused request gets: one readable sentence, and for invalid input one per problem."""

    detail: str
    errors: list[str] | None = None
