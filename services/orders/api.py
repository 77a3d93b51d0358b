"""The orders HTTP API: place an order, read one, list them, read the catalog.

`POST /orders` prices the lines from the catalog and writes the pending order and its
`OrderCreated` event in one transaction (`service.transaction()`): the event leaves through
the outbox only if the order committed. Anything invalid is refused with a 4xx and a message
before or inside that transaction, so nothing is written for a refused request. With an
`Idempotency-Key` header the key and the response are stored in that same transaction, and a
retry gets the stored response back (`services.orders.idempotency`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import AfterValidator
from sqlalchemy import Row, select
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.contracts import LineItem, OrderCreated
from services.kit.db import utcnow
from services.orders.idempotency import HEADER, REPLAYED, IdempotencyKeys, check_same_request, fingerprint, parse_key
from services.orders.limits import BodySizeLimit
from services.orders.models import ORDERS, CatalogItem, OrderStatus, add_order, new_order
from services.orders.reads import LINES_OF_ORDERS, ORDER_BY_ID, Prices, Reads
from services.orders.saga import begin_order
from services.orders.schemas import (
    NAME_PATTERN,
    CatalogEntry,
    Name,
    OrderList,
    OrderRequest,
    OrderView,
    Problem,
    as_utc,
)
from services.settings import Settings
from tidings.observe.metrics import CONTENT_TYPE
from tidings.service import Service

MAX_BODY = 64 * 1024
KEY_DOC = (
    "Makes the request safe to retry: the same key and body replay the first response (201, same order); "
    "the same key with another body is a 422, a key whose request is still running a 409. Kept 24 h."
)
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": Problem, "description": "Invalid parameters"}}
PLACE_ORDER_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "A request with this Idempotency-Key is still being processed"},
    413: {"model": Problem, "description": "The body is larger than 64 KiB"},
    422: {"model": Problem, "description": "Invalid order, unknown sku, or a key reused with another body"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No such order"}, **INVALID}


def create_app(service: Service, settings: Settings, reads: Reads | None = None) -> FastAPI:
    """The API of a started orders `service` (its store must be open when requests arrive); the GET
    endpoints read through `reads` (default: the service's store)."""
    reads = reads or Reads(service)
    prices = Prices()
    app = FastAPI(
        title="Tidings shop: orders",
        version="1.0",
        description="Place orders; they settle asynchronously (confirmed or cancelled) through the shop's services.",
    )
    app.add_middleware(BodySizeLimit, limit=MAX_BODY)
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    deadline = timedelta(seconds=settings.deadline)  # the order saga times out then

    keys = IdempotencyKeys(settings.idempotency_retention)
    app.state.idempotency_keys = keys

    @app.post("/orders", status_code=201, response_model=OrderView, responses=PLACE_ORDER_ERRORS)
    async def place_order(
        request: OrderRequest,
        response: Response,
        idempotency_key: Annotated[str | None, Header(alias=HEADER, description=KEY_DOC, max_length=1024)] = None,
    ) -> OrderView:
        """Create a pending order; poll `GET /orders/{id}` until its status is confirmed or cancelled.

        Send an `Idempotency-Key` to make the request safe to retry (see docs/shop.md)."""
        if idempotency_key is None:
            return await _place(request, response, None, "")
        key, digest = parse_key(idempotency_key), fingerprint(request)
        async with keys.in_progress(key):
            try:
                return await _place(request, response, key, digest)
            except IntegrityError:  # another process stored the key first: now it is there to replay
                return await _place(request, response, key, digest)

    async def _place(request: OrderRequest, response: Response, key: str | None, digest: str) -> OrderView:
        order_id = str(uuid.uuid4())
        async with service.transaction() as ctx:  # Core statements on ctx.connection: no ORM objects to flush
            db, now = ctx.connection, utcnow()
            stored = None if key is None else await keys.find(db, key, now)
            if stored is not None:
                check_same_request(stored, digest)
                response.status_code = stored.status_code
                response.headers["Location"] = f"/orders/{stored.order_id}"
                response.headers[REPLAYED] = "true"
                return OrderView.model_validate_json(stored.response)
            skus = [line.sku for line in request.lines]
            known = await prices.of(db, skus)
            unknown = sorted(set(skus) - known.keys())
            if unknown:
                raise HTTPException(422, f"unknown sku(s): {', '.join(unknown)}")
            lines = [LineItem(sku=ln.sku, quantity=ln.quantity, unit_price=known[ln.sku]) for ln in request.lines]
            total = sum((line.unit_price * line.quantity for line in lines), start=Decimal("0.00"))
            event = OrderCreated(order_id=order_id, customer_id=request.customer_id, lines=tuple(lines), total=total)
            envelope = ctx.publish(event)
            correlation = envelope.correlationid or envelope.id
            order = new_order(order_id, request.customer_id, total, correlation, now, now + deadline)
            rows = [
                {"order_id": order_id, "sku": ln.sku, "quantity": ln.quantity, "unit_price": ln.unit_price}
                for ln in sorted(lines, key=lambda line: line.sku)
            ]
            await add_order(db, order, rows)
            await begin_order(ctx, order)
            view = OrderView.pending(order, rows)
            if key is not None:
                await keys.record(db, key, digest, order_id, 201, view.model_dump_json(), now)
        response.headers["Location"] = f"/orders/{order_id}"
        return view

    @app.get("/orders/{order_id}", response_model=OrderView, responses=NOT_FOUND)
    async def get_order(order_id: Annotated[str, Path(max_length=64, pattern=NAME_PATTERN)]) -> OrderView:
        async with reads.connection() as db:
            order = (await db.execute(ORDER_BY_ID, {"order_id": order_id})).one_or_none()
            if order is None:
                raise HTTPException(404, f"no order {order_id}")
            lines = list(await db.execute(LINES_OF_ORDERS, {"ids": [order_id]}))
        return OrderView.of(order, lines)

    @app.get("/orders", response_model=OrderList, responses=INVALID)
    async def list_orders(
        status: OrderStatus | None = None,
        customer: Annotated[str | None, Query(max_length=64, pattern=NAME_PATTERN)] = None,
        order_id: Annotated[list[Name] | None, Query(alias="id", max_length=200)] = None,
        settled_after: Annotated[datetime | None, AfterValidator(as_utc)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> OrderList:
        """Newest first; filter by status, customer and/or order ids (`?id=...&id=...`).

        With `settled_after` (inclusive), the orders settled since then, oldest settlement first:
        a feed a client follows by passing the last `settled_at` it saw, getting each order once.
        """
        query = select(ORDERS).limit(limit)
        if settled_after is not None:
            query = query.where(ORDERS.c.settled_at >= settled_after).order_by(ORDERS.c.settled_at)
        else:
            query = query.order_by(ORDERS.c.created_at.desc())
        if status is not None:
            query = query.where(ORDERS.c.status == status)
        if customer is not None:
            query = query.where(ORDERS.c.customer_id == customer)
        if order_id:
            query = query.where(ORDERS.c.order_id.in_(order_id))
        async with reads.connection() as db:
            orders = list(await db.execute(query))
            lines: dict[str, list[Row[Any]]] = defaultdict(list)
            if orders:
                for line in await db.execute(LINES_OF_ORDERS, {"ids": [order.order_id for order in orders]}):
                    lines[line.order_id].append(line)
        return OrderList(orders=[OrderView.of(o, lines[o.order_id]) for o in orders], count=len(orders))

    @app.get("/catalog", response_model=list[CatalogEntry])
    async def catalog() -> list[CatalogEntry]:
        async with reads.session() as session:
            items = await session.scalars(select(CatalogItem).order_by(CatalogItem.sku))
            return [CatalogEntry(sku=item.sku, unit_price=item.unit_price) for item in items]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service.name}

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        """The process answers (its event loop turns)."""
        return {"status": "live", "service": service.name}

    @app.get("/health/ready", responses={503: {"description": "not ready; the body says which check failed"}})
    async def ready() -> JSONResponse:
        """The orders service can work now: database, migrations, broker, background tasks."""
        verdict = await service.ready()
        return JSONResponse(verdict, status_code=200 if verdict["status"] == "ready" else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """The orders service's Prometheus metrics (the text exposition format 0.0.4)."""
        return PlainTextResponse(await service.scrape(), media_type=CONTENT_TYPE)

    return app


BODY_UNREADABLE = "There was an error parsing the body"
"""FastAPI's 400 for a body its JSON decoder cannot even read (not UTF-8, say)."""


async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
    """FastAPI's answer, except that a 405's `Allow` lists every method of the path (Starlette
    names only those of the first route matching it: `POST` for `/orders`, which also has `GET`),
    and a body that is not UTF-8 is malformed JSON like any other: 422 with a message."""
    if error.status_code == 405:
        allowed = sorted(
            method
            for route in request.app.routes
            if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
            for method in route.methods or ()
        )
        error.headers = {**(error.headers or {}), "Allow": ", ".join(allowed)}
    if error.status_code == 400 and error.detail == BODY_UNREADABLE:
        problem = "body: JSON decode error: the body is not UTF-8"
        return JSONResponse(status_code=422, content={"detail": problem, "errors": [problem]})
    return await http_exception_handler(request, error)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one readable sentence per problem (FastAPI's default lists raw pydantic errors)."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body") or "body"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return JSONResponse(status_code=422, content={"detail": "; ".join(problems), "errors": problems})
