"""`shop load`: place orders through the HTTP API at a given rate and measure how they settle.

The mix exercises every path of the flow (see `plan`): most orders can be filled and paid, some
want a sku with little or no stock, some come from customers who cannot pay or have no account.
Latency is create-to-settled as the orders service recorded it (`created_at`, `settled_at`,
both written in its own transactions), so client-side polling adds nothing to the figures.

Each order is sent with its own `Idempotency-Key`, so a request whose response was lost
(connection error, timeout) or that got a 5xx or a 409 is sent again with the same key for up to
`retry_for` seconds: the orders API replays the first response instead of placing a second
order. Every accepted order id is appended to `accepted_file` (`<data>/accepted-orders.txt`
under `shop load`), which `shop check` reads to verify that each one exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.feed import SettledFeed, fetch
from services.seed import BROKE_CUSTOMERS, REGULAR_SKUS, SOLVENT_CUSTOMERS

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ACCEPTED_FILE = "accepted-orders.txt"
FOLLOW_EVERY = 0.5
"""Seconds between two polls of the settled feed: it only tells when the run is over (latency is
the orders service's own timestamps), and each poll re-reads a second of settlements, so polling
more often loads the API being measured for nothing."""


def plan(index: int, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """The `index`-th order of a run: its intended path and its request body.

    Out of every 20 orders: 14 should be confirmed, 3 want scarce stock (one never in stock,
    two the sku that runs out), 2 come from customers with almost no money, 1 from an unknown
    customer.
    """
    slot = index % 20
    lines = [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in rng.sample(REGULAR_SKUS, rng.randint(1, 3))]
    customer = rng.choice(SOLVENT_CUSTOMERS)
    if slot < 14:
        path = "confirm"
    elif slot < 17:
        path = "out-of-stock"
        sku = "SKU-BACKORDER" if slot == 14 else "SKU-LIMITED"
        lines = [*lines[:1], {"sku": sku, "quantity": 3}]
    elif slot < 19:
        path, customer = "insufficient-funds", rng.choice(BROKE_CUSTOMERS)
    else:
        path, customer = "no-account", f"customer-unknown-{index}"
    return path, {"customer_id": customer, "lines": lines}


@dataclass
class LoadReport:
    orders: int
    rate: float
    placed: int = 0
    refused: int = 0
    retried: int = 0
    """Requests sent again (same key) after a lost response, a 5xx or a 409."""
    replayed: int = 0
    """Accepted orders whose 201 was a replay of a response the client had not received."""
    retry_reasons: dict[str, int] = field(default_factory=dict)
    """Why requests were retried: an HTTP status, or the connection error's name."""
    settled: int = 0
    unsettled: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    orders_per_second: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    post_latency_ms: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max of `values` (nearest rank), rounded to 0.1."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))], 1)

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": round(ordered[-1], 1)}


async def run_load(
    api: str,
    orders: int,
    rate: float,
    *,
    concurrency: int = 64,
    seed: int = 1,
    settle_timeout: float = 120.0,
    console: Console | None = None,
    show_progress: bool = True,
    accepted_file: Path | None = None,
    stop: asyncio.Event | None = None,
    retry_for: float = 60.0,
    request_timeout: float = 10.0,
) -> LoadReport:
    """Place `orders` orders at `rate`/s (0: as fast as `concurrency` allows), wait until all settle.

    `stop` set ends the placing early (`orders` in the report is then how many were tried).
    HTTP goes through aiohttp: httpx cost the load generator more CPU than the orders API spent
    on the same requests, taken from the services being measured (ADR 0030)."""
    report = LoadReport(orders=orders, rate=rate)
    reasons: Counter[str] = Counter()
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:12]
    recorder = _Recorder(accepted_file)
    placed: list[str] = []
    post_latency: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    progress = Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
    )
    client = aiohttp.ClientSession(
        base_url=api,
        connector=aiohttp.TCPConnector(limit=concurrency + 1),  # the feed's poll beside `concurrency` POSTs
        timeout=aiohttp.ClientTimeout(total=request_timeout),
    )
    async with client, recorder:
        feed = SettledFeed(client, since=datetime.now(UTC) - timedelta(seconds=1))
        with progress:
            placing = progress.add_task("placed", total=orders)
            settling = progress.add_task("settled", total=orders)
            started = time.monotonic()

            async def place(index: int) -> None:
                _, body = plan(index, rng)
                async with gate:
                    sent = time.monotonic()
                    response, attempts = await post_order(
                        client, body, f"{run}-{index}", retry_for=retry_for, reasons=reasons
                    )
                    post_latency.append((time.monotonic() - sent) * 1000)
                report.retried += attempts - 1
                if isinstance(response, Reply) and response.status == 201:
                    placed.append(response.json()["order_id"])
                    recorder.add(placed[-1])
                    report.replayed += response.replayed
                else:
                    report.refused += 1
                    detail = response if isinstance(response, str) else f"{response.status} {response.text[:200]}"
                    report.errors.append(detail)
                progress.advance(placing)

            all_placed, all_settled = asyncio.Event(), asyncio.Event()

            async def follow() -> None:
                stalled = 0
                while True:
                    before = feed.count(placed)
                    await feed.poll()
                    settled = feed.count(placed)
                    stalled = stalled + 1 if settled == before and all_placed.is_set() else 0
                    if stalled >= 2:  # nothing new for a second: ask for the stragglers by id
                        await feed.fill([order_id for order_id in placed if order_id not in feed.views][:2000])
                        settled, stalled = feed.count(placed), 0
                    progress.update(settling, completed=settled + report.refused)
                    if all_placed.is_set() and settled == len(placed):
                        all_settled.set()
                    await asyncio.sleep(FOLLOW_EVERY)

            follower = asyncio.create_task(follow())
            tasks = []
            for index in range(orders):
                if stop is not None and stop.is_set():
                    report.orders = index
                    progress.update(placing, total=index)
                    progress.update(settling, total=index)
                    break
                if rate > 0:
                    await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
                else:
                    await gate.acquire()
                    gate.release()
                tasks.append(asyncio.create_task(place(index)))
            await asyncio.gather(*tasks)
            all_placed.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_settled.wait(), settle_timeout)
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await feed.poll()
            progress.update(settling, completed=feed.count(placed) + report.refused)
        views = [feed.views[order_id] for order_id in placed if order_id in feed.views]
        views += await fetch(client, [order_id for order_id in placed if order_id not in feed.views])
    report.placed = len(placed)
    report.retry_reasons = dict(reasons.most_common())
    report.post_latency_ms = percentiles(post_latency)
    report.duration_s = round(time.monotonic() - started, 2)
    _summarise(report, views)
    return report


def _summarise(report: LoadReport, views: list[dict[str, Any]]) -> None:
    outcomes: Counter[str] = Counter()
    latencies, created, settled = [], [], []
    for view in views:
        outcomes[view["status"] if view["status"] != "cancelled" else f"cancelled:{view['reason']}"] += 1
        if view["settled_at"] is None:
            continue
        start, end = datetime.fromisoformat(view["created_at"]), datetime.fromisoformat(view["settled_at"])
        latencies.append((end - start).total_seconds() * 1000)
        created.append(start)
        settled.append(end)
    report.outcomes = dict(sorted(outcomes.items()))
    report.settled = len(latencies)
    report.unsettled = report.placed - report.settled
    report.latency_ms = percentiles(latencies)
    if settled:
        span = (max(settled) - min(created)).total_seconds()
        report.orders_per_second = round(len(settled) / span, 1) if span > 0 else 0.0


RETRIED_STATUS = frozenset({409, 500, 502, 503, 504})


@dataclass(frozen=True)
class Reply:
    """An HTTP response, read whole: its status, its body, and whether the API replayed it."""

    status: int
    body: bytes
    replayed: bool = False

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


async def post_order(
    client: aiohttp.ClientSession,
    body: dict[str, Any],
    key: str,
    *,
    retry_for: float = 60.0,
    reasons: Counter[str] | None = None,
) -> tuple[Reply | str, int]:
    """POST an order with `key` as its Idempotency-Key: the response, or why there was none, and
    how many requests it took. A lost response (connection error, timeout), a 5xx or a 409 is
    retried with the same key, which cannot place the order twice, for up to `retry_for` seconds;
    `reasons` counts why (an HTTP status or the error's name)."""
    give_up = time.monotonic() + retry_for
    attempt = 0
    while True:
        attempt += 1
        try:
            async with client.post("/orders", json=body, headers={KEY_HEADER: key}) as response:
                reply = Reply(response.status, await response.read(), response.headers.get(REPLAYED_HEADER) == "true")
            if reply.status not in RETRIED_STATUS:
                return reply, attempt
            outcome: Reply | str = reply
            reason = str(reply.status)
        except (aiohttp.ClientError, TimeoutError) as error:  # refused, reset, timed out: maybe placed, maybe not
            outcome = f"no response: {type(error).__name__}: {error}"
            reason = type(error).__name__
        if time.monotonic() >= give_up:
            return outcome, attempt
        if reasons is not None:
            reasons[reason] += 1
        await asyncio.sleep(min(1.0, 0.1 * attempt, max(0.0, give_up - time.monotonic())))


class _Recorder:
    """Appends each accepted order id to a file, one per line, as soon as it is accepted."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: Any = None

    async def __aenter__(self) -> _Recorder:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()

    def add(self, order_id: str) -> None:
        if self._file is not None:
            self._file.write(order_id + "\n")
            self._file.flush()


def read_accepted(path: Path) -> list[str] | None:
    """The order ids the load runs were told were accepted; None if none ran here."""
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return None


def print_report(report: LoadReport, console: Console) -> None:
    latency = report.latency_ms
    console.print(
        f"placed {report.placed}/{report.orders} (refused {report.refused}, retried {report.retried}, "
        f"replayed {report.replayed}), settled {report.settled}, unsettled {report.unsettled} in {report.duration_s}s"
    )
    console.print("outcomes: " + ", ".join(f"{name} {count}" for name, count in report.outcomes.items()))
    if latency:
        console.print(
            f"throughput {report.orders_per_second} settled orders/s; create-to-settled latency "
            f"p50 {latency['p50']} ms, p95 {latency['p95']} ms, p99 {latency['p99']} ms, max {latency['max']} ms"
        )
    for error in report.errors[:5]:
        console.print(f"[red]refused:[/red] {error}")


def write_report(report: LoadReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
