"""Sagas: a process manager whose state is kept per correlation id in the service's database.

    class Fulfilment(Saga, name="fulfilment", timeout=30):
        order_id: str = ""

        @starts(OrderPlaced)
        async def placed(self, event: OrderPlaced, ctx: SagaContext) -> None:
            self.order_id = event.order_id
            ctx.publish(ReserveStock(order_id=event.order_id))

        @handles(StockReserved)
        async def reserved(self, event: StockReserved, ctx: SagaContext) -> None:
            ctx.on_compensation(ReleaseStock(order_id=self.order_id))
            ...

    service.saga(Fulfilment)

Each step runs inside the runtime's unit of work for that event: the instance row is read (and
locked on PostgreSQL), the method runs, and the new state commits together with the inbox claim
and the outbox rows, so a redelivered event has its effect once. Design and trade-offs:
docs/decisions/0010-sagas.md.
"""

from tidings.saga.model import RUNNING, Saga, SagaContext, SagaNotStarted, handles, starts
from tidings.saga.state import begin, instance
from tidings.saga.steps import steps
from tidings.saga.timeouts import TimeoutSweeper

__all__ = [
    "RUNNING",
    "Saga",
    "SagaContext",
    "SagaNotStarted",
    "TimeoutSweeper",
    "begin",
    "handles",
    "instance",
    "starts",
    "steps",
]
