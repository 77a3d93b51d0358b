"""`TimeoutSweeper`: the supervised task that runs `timed_out` for saga instances past their deadline."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select, update

from tidings.events import Registry
from tidings.observe import tracing
from tidings.saga.model import RETRY_TIMEOUT_AFTER, RUNNING, Saga, SagaContext, Transaction
from tidings.saga.state import compensations_of, load, save
from tidings.store import Store
from tidings.store.tables import sagas

log = logging.getLogger("tidings.saga")


class TimeoutSweeper:
    """Runs `timed_out` for saga instances past their deadline: a supervised background task of a
    service with sagas (`run()` loops until cancelled; `sweep()` is one round)."""

    def __init__(
        self,
        owner: str,
        store: Store,
        transaction: Transaction,
        registry: Registry,
        saga_classes: dict[str, type[Saga]],
        *,
        poll: float = 1.0,
    ) -> None:
        self._owner = owner
        self._store = store
        self._transaction = transaction
        self._registry = registry
        self._classes = saga_classes
        self._poll = poll

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as error:  # the database is down, say: try again next round
                log.warning("%s: saga timeout sweep failed: %r", self._owner, error)
            await asyncio.sleep(self._poll)

    async def sweep(self) -> int:
        """Time out every instance past its deadline now; returns how many timed out."""
        store = self._store
        async with store.session() as session, session.begin():
            due = select(sagas.c.saga, sagas.c.correlation).where(
                sagas.c.status == RUNNING, sagas.c.deadline <= time.time(), sagas.c.saga.in_(self._classes)
            )
            found = (await session.execute(due.order_by(sagas.c.deadline).limit(100))).all()
        timed_out = 0
        for name, correlation in found:
            try:
                timed_out += await self._time_out(self._classes[name], correlation)
            except Exception:
                log.exception("%s: saga %s %s: timed_out failed; retrying later", self._owner, name, correlation)
                async with store.session() as session, session.begin():
                    later = time.time() + RETRY_TIMEOUT_AFTER
                    where = (sagas.c.saga == name) & (sagas.c.correlation == correlation)
                    await session.execute(update(sagas).where(where).values(deadline=later))
        return timed_out

    async def _time_out(self, saga_class: type[Saga], correlation: str) -> int:
        name = saga_class.saga_name
        async with self._transaction() as ctx:
            row = await load(ctx.connection, name, correlation, skip_locked=True)  # another replica has it
            if row is None or row.status != RUNNING or row.deadline is None or row.deadline > time.time():
                return 0
            saga = saga_class.model_validate_json(row.state)
            saga_context = SagaContext(ctx, self._registry, correlation, compensations_of(row), row.deadline)
            # the cancellation and its compensations continue the transaction's trace, not a new one
            attributes = {"tidings.saga.name": name, "tidings.saga.correlation": correlation}
            with tracing.continuing(row.traceparent, f"timeout {name}", attributes):
                await saga.timed_out(saga_context)
            if saga_context.status == RUNNING and saga_context.deadline == row.deadline:
                saga_context.set_timeout(None)  # neither ended nor rescheduled: do not fire again
            await save(ctx.connection, name, saga, saga_context, new=False)
        log.info("saga %s %s timed out: %s", name, correlation, saga_context.status)
        return 1
