"""A two-service demo on the embedded SQLite broker: `tidings demo`.

`ledger` runs as its own OS process (`tidings run tidings.demo:ledger`); this process plays
`checkout`, publishes `demo.purchase.made` events and waits for one `demo.receipt.issued` per
purchase, showing progress. Nothing but Python and a data directory is needed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tidings.context import Context
from tidings.events import Event
from tidings.service import Service


class PurchaseMade(Event, type="demo.purchase.made", version=1):
    purchase_id: str
    amount: Decimal

    def subject(self) -> str:
        return self.purchase_id


class ReceiptIssued(Event, type="demo.receipt.issued", version=1):
    purchase_id: str
    total_so_far: Decimal

    def subject(self) -> str:
        return self.purchase_id


def _broker_url() -> str:
    return os.environ.get("TIDINGS_BROKER", "sqlite:///data/demo/broker.db")


ledger = Service("ledger", broker=_broker_url())
_totals: dict[str, Decimal] = {"total": Decimal(0)}


@ledger.on(PurchaseMade)
async def record_purchase(event: PurchaseMade, ctx: Context) -> None:
    _totals["total"] += event.amount
    ctx.publish(ReceiptIssued(purchase_id=event.purchase_id, total_so_far=_totals["total"]))


async def _wait_for_group(service: Service, group: str, child: asyncio.subprocess.Process) -> None:
    """Events reach a group only once it is declared: wait for the ledger process to subscribe."""
    deadline = time.monotonic() + 30
    while group not in await service.transport.backlog():
        if child.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the {group} process did not start (exit code {child.returncode})")
        await asyncio.sleep(0.05)


async def run_demo(purchases: int, data_dir: Path) -> int:
    """Start `ledger` as a child process, exchange `purchases` events with it, return an exit code.

    `data_dir` must exist; the broker file is created in it.
    """
    broker = f"sqlite:///{data_dir / 'broker.db'}"
    checkout = Service("checkout", broker=broker)
    receipts: set[str] = set()

    @checkout.on(ReceiptIssued)
    async def count_receipt(event: ReceiptIssued, ctx: Context) -> None:
        receipts.add(event.purchase_id)

    env = {**os.environ, "TIDINGS_BROKER": broker}
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "tidings", "run", "tidings.demo:ledger", env=env)
    started = time.monotonic()
    try:
        async with checkout:
            await _wait_for_group(checkout, "ledger", child)
            with Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            ) as progress:
                sent = progress.add_task("published", total=purchases)
                done = progress.add_task("receipts ", total=purchases)
                ids = [f"p-{int(started)}-{n}" for n in range(purchases)]
                for start in range(0, purchases, 50):
                    batch = [PurchaseMade(purchase_id=i, amount=Decimal("9.99")) for i in ids[start : start + 50]]
                    await checkout.publish(*batch)
                    progress.update(sent, advance=len(batch))
                deadline = time.monotonic() + 60
                while len(receipts.intersection(ids)) < purchases and time.monotonic() < deadline:
                    progress.update(done, completed=len(receipts.intersection(ids)))
                    await asyncio.sleep(0.05)
                progress.update(done, completed=len(receipts.intersection(ids)))
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), timeout=30)
    received = len(receipts.intersection(ids))
    elapsed = time.monotonic() - started
    print(f"{received}/{purchases} purchases got a receipt from the ledger process in {elapsed:.1f}s")
    return 0 if received == purchases else 1
