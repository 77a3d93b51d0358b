"""`Idempotency-Key` on `POST /orders`, after the IETF httpapi "Idempotency-Key" draft.

A client that lost the response to `POST /orders` cannot know whether the order exists; with a
key it can send the same request again. The key and the response are stored in the orders
database in the order's own transaction (`IdempotencyKey`), so they exist exactly when the order
does, whichever process or restart answers the retry:

- same key, same body (as parsed: field order and spacing do not matter): the first response is
  replayed, same status and order, with `Idempotent-Replayed: true`; nothing new is written;
- same key, another body: 422, the key is taken;
- same key while its first request is still being processed by this API process: 409 with
  `Retry-After: 1` (across processes sharing a PostgreSQL database, the key's primary key makes
  the second wait for the first and then replay its response);
- a refused request (4xx) or a failed one (5xx) stores nothing, so its retry runs again;
- keys are kept `Settings.idempotency_retention` seconds (24 h), then free again; the orders
  service deletes the expired ones every minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from fastapi import HTTPException
from pydantic import BaseModel
from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.kit.db import utcnow
from services.orders.models import IdempotencyKey
from tidings.service import Service
from tidings.store import Prepared

log = logging.getLogger("services.orders")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_LENGTH = 255
PURGE_EVERY = 60.0


def parse_key(raw: str) -> str:
    """The key of a header value: a structured-field string (`"..."`) or the bare token; 422 if
    it is empty, longer than 255 characters or not printable ASCII."""
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_LENGTH or not all(" " <= char <= "~" for char in key):
        raise HTTPException(422, f"{HEADER} must be 1 to {MAX_LENGTH} printable ASCII characters")
    return key


def fingerprint(request: BaseModel) -> str:
    """What makes two requests "the same": their parsed bodies, canonically serialised."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyKeys:
    """The keys of one API process: which are being processed now, and the stored ones."""

    def __init__(self, retention: float) -> None:
        self.retention = timedelta(seconds=retention)
        self._running: set[str] = set()

    @contextlib.asynccontextmanager
    async def in_progress(self, key: str) -> AsyncIterator[None]:
        """Hold `key` while its request is processed; 409 if another request holds it."""
        if key in self._running:
            raise HTTPException(
                409,
                f"a request with {HEADER} {key!r} is still being processed; retry it later",
                headers={"Retry-After": "1"},
            )
        self._running.add(key)
        try:
            yield
        finally:
            self._running.discard(key)

    async def find(self, db: AsyncConnection, key: str, now: datetime) -> StoredKey | None:
        """The stored key, locked for this transaction; an expired one is deleted and is None.

        Core statements on the request's `ctx.connection`: one locked read, no ORM object."""
        row = await LOCKED_KEY.first(db, {"key": key})
        if row is None:
            return None
        if row.expires_at <= now:
            await DELETE_KEY.execute(db, {"of_key": key})
            return None
        return StoredKey(*row[:5])

    async def record(
        self, db: AsyncConnection, key: str, digest: str, order_id: str, status: int, body: str, now: datetime
    ) -> None:
        """Store `key` with the response it got; `IntegrityError` if another request stored it first."""
        row = {
            "key": key,
            "fingerprint": digest,
            "order_id": order_id,
            "status_code": status,
            "response": body,
            "created_at": now,
            "expires_at": now + self.retention,
        }
        await ADD_KEY.execute(db, row)


KEYS = cast(Table, IdempotencyKey.__table__)
# Built once, with bound parameters, and `Prepared` (compiled once; on SQLite run on the driver, ADR 0036).
LOCKED_KEY = Prepared(
    select(KEYS.c.key, KEYS.c.fingerprint, KEYS.c.order_id, KEYS.c.status_code, KEYS.c.response, KEYS.c.expires_at)
    .where(KEYS.c.key == bindparam("key"))
    .with_for_update()
)
DELETE_KEY = Prepared(delete(KEYS).where(KEYS.c.key == bindparam("of_key")))
ADD_KEY = Prepared(insert(KEYS))


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A stored `Idempotency-Key` and the response to replay."""

    key: str
    fingerprint: str
    order_id: str
    status_code: int
    response: str


def check_same_request(row: StoredKey, digest: str) -> None:
    if row.fingerprint != digest:
        raise HTTPException(
            422,
            f"{HEADER} {row.key!r} was already used with a different request body (order {row.order_id}); "
            "use a new key for a new order",
        )


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    """Delete the keys whose retention has passed; returns how many."""
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_forever(service: Service, every: float = PURGE_EVERY) -> None:
    """The orders service's background task: purge expired keys every `every` seconds."""
    while True:
        async with service.store.session() as session, session.begin():
            purged = await purge_expired(session, utcnow())
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        await asyncio.sleep(every)
