"""The shop on the three-node RabbitMQ cluster (`scripts/cluster.sh`) and PostgreSQL with replicas,
under load, losing a broker node and one replica of every service; and the scale-out figure.

`replicas_run`: two replicas of every service, steady load; then the node leading the orders
group's quorum queue is SIGKILLed and one replica of each service is SIGKILLed (the supervisor
restarts it); the node is started again, the load stops, every order must settle and the strict
`shop check` must pass. The report counts the faults, the duplicates the inboxes absorbed and
the time to settle.

`scale_run`: settled orders/s with 1 and with 2 replicas of one service, same load, one run.

    python -m services.chaos.cluster replicas --out data/chaos/cluster.json
    python -m services.chaos.cluster scale --service orders --orders 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from services.chaos.run import _free_port, _until
from services.chaos.stats import StatsCollector
from services.check import check
from services.kit.db import drop_databases
from services.load import ACCEPTED_FILE, read_accepted, run_load
from services.settings import SERVICES, Settings
from services.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql://postgres:postgres@127.0.0.1:5432"
HOSTS = "127.0.0.1:5701,127.0.0.1:5702,127.0.0.1:5703"
MANAGEMENT = ("http://127.0.0.1:15701", "http://127.0.0.1:15702", "http://127.0.0.1:15703")


async def cluster_script(*args: str) -> float:
    """`scripts/cluster.sh ARGS`; seconds taken; raises if it fails."""
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "scripts" / "cluster.sh"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"scripts/cluster.sh {' '.join(args)}: {output.decode()[-600:]}")
    return time.monotonic() - began


@contextlib.asynccontextmanager
async def shop(
    root: Path, name: str, replicas: Mapping[str, int], say: Callable[[str], None]
) -> AsyncIterator[tuple[Settings, Supervisor, str]]:
    """A fresh vhost on the cluster, fresh PostgreSQL databases, and the shop running on them."""
    data = root / name
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    vhost = f"shop-{name}-{uuid.uuid4().hex[:8]}"
    prefix = f"tidings_cluster_{uuid.uuid4().hex[:6]}_"
    path = quote(vhost, safe="")
    async with httpx.AsyncClient(base_url=MANAGEMENT[0], auth=("guest", "guest"), timeout=30) as api:
        (await api.put(f"/api/vhosts/{path}")).raise_for_status()
        perms = {"configure": ".*", "write": ".*", "read": ".*"}
        (await api.put(f"/api/permissions/{path}/guest", json=perms)).raise_for_status()
    broker = f"amqp://guest:guest@{HOSTS}/{path}?management_url={','.join(MANAGEMENT)}&reconnect_max=0.5"
    settings = Settings(
        data_dir=data,
        broker=broker,
        database=POSTGRES,
        db_prefix=prefix,
        api_port=_free_port(),
        concurrency=8,
        metrics_port=0,
    )
    log = (data / "run.log").open("a", encoding="utf-8")

    def note(line: str) -> None:
        log.write(line + "\n")
        log.flush()

    supervisor = Supervisor(settings, replicas=replicas, say=note)
    try:
        await supervisor.start(ready_within=180)
        say(f"{name}: shop up with replicas {dict(replicas)} on vhost {vhost}")
        yield settings, supervisor, vhost
    finally:
        await supervisor.stop()
        log.close()
        await drop_databases(POSTGRES, prefix, SERVICES)
        async with httpx.AsyncClient(auth=("guest", "guest"), timeout=30) as api:
            for base in MANAGEMENT:
                with contextlib.suppress(httpx.HTTPError):
                    await api.delete(f"{base}/api/vhosts/{path}")
                    break


async def _leader(vhost: str, queue: str) -> str:
    async with httpx.AsyncClient(auth=("guest", "guest"), timeout=10) as api:
        for base in MANAGEMENT:
            with contextlib.suppress(httpx.HTTPError):
                response = await api.get(f"{base}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
                return str(response.json()["leader"])
    raise RuntimeError("no node of the RabbitMQ cluster answers")


async def replicas_run(root: Path, *, rate: float = 6.0, say: Callable[[str], None] = print) -> dict[str, Any]:
    began = time.monotonic()
    replicas = dict.fromkeys(SERVICES, 2)
    async with shop(root, "replicas", replicas, say) as (settings, supervisor, vhost):
        instances = list(supervisor.children)
        stats = StatsCollector(settings, instances)
        collecting = asyncio.create_task(stats.run())
        accepted = settings.data_dir / ACCEPTED_FILE
        stop = asyncio.Event()
        api = f"http://127.0.0.1:{settings.api_port}"
        loading = asyncio.create_task(
            run_load(api, 10**6, rate, show_progress=False, accepted_file=accepted, stop=stop, settle_timeout=180)
        )
        await _until(lambda: len(read_accepted(accepted) or ()) >= 3 * rate, within=90)  # steady load first
        faults: list[dict[str, Any]] = []
        leader = await _leader(vhost, "tidings:orders")
        node = leader.removeprefix("tidings-c").partition("@")[0]
        await cluster_script("kill", "rabbitmq", node)
        faults.append({"kind": "kill-broker-node", "target": leader, "at_s": round(time.monotonic() - began, 1)})
        say(f"  killed broker node {leader} (leader of the orders queue)")
        for service in SERVICES:  # the second replica of each; replica 1 of orders serves the API
            await asyncio.sleep(1.0)
            pid = supervisor.pid(f"{service}-2")
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                faults.append(
                    {"kind": "kill-replica", "target": f"{service}-2", "at_s": round(time.monotonic() - began, 1)}
                )
        say(f"  killed one replica of each service: {[f['target'] for f in faults[1:]]}")
        await asyncio.sleep(5.0)
        back_in = await cluster_script("up", "rabbitmq")
        faults.append({"kind": "restart-broker-node", "target": leader, "took_s": round(back_in, 1)})
        cleared = time.monotonic()
        await asyncio.sleep(5.0)
        stop.set()
        load = await loading
        settled_after = time.monotonic() - cleared
        lines: list[str] = []
        violations, snapshot = await check(settings, wait=90.0, say=lines.append)
        quiet_after = time.monotonic() - cleared
        await stats.final()
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
        restarts = {name: child.restarts for name, child in supervisor.children.items()}
        service_of = {name: child.service for name, child in supervisor.children.items()}
    duplicates = stats.totals("duplicates")
    by_service: Counter[str] = Counter()
    for instance, count in duplicates.items():
        by_service[service_of[instance]] += count
    return {
        "run": "rabbitmq-cluster-replicas",
        "duration_s": round(time.monotonic() - began, 1),
        "replicas": replicas,
        "orders": {
            "placed": load.orders,
            "accepted": load.placed,
            "in_database": len(snapshot.orders),
            "outcomes": load.outcomes,
            "requests_retried": load.retried,
            "refused": load.refused,
        },
        "faults": faults,
        "fault_counts": dict(Counter(fault["kind"] for fault in faults)),
        "restarts": restarts,
        "duplicates_absorbed": {"total": sum(duplicates.values()), "by_service": dict(by_service)},
        "time_to_settle_s": {"orders": round(settled_after, 1), "everything": round(quiet_after, 1)},
        "violations": violations,
        "check": lines,
    }


async def scale_run(
    root: Path, service: str, *, orders: int = 300, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Settled orders/s at saturation with 1, then 2 replicas of `service` (the rest: one each)."""
    figures: dict[str, Any] = {}
    for count in (1, 2):
        async with shop(root, f"scale-{count}", {service: count}, say) as (settings, _, _vhost):
            api = f"http://127.0.0.1:{settings.api_port}"
            report = await run_load(api, orders, 0.0, show_progress=False, settle_timeout=240, concurrency=32)
            figures[str(count)] = {"orders_per_second": report.orders_per_second, "settled": report.settled}
            say(f"  {service} x{count}: {report.orders_per_second:.1f} settled orders/s ({report.settled}/{orders})")
    ratio = figures["2"]["orders_per_second"] / max(figures["1"]["orders_per_second"], 1e-9)
    return {"run": "scale-out", "service": service, "orders": orders, "replicas": figures, "ratio": round(ratio, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("what", choices=("replicas", "scale"))
    parser.add_argument("--service", default="orders", help="scale: the service to run twice [orders]")
    parser.add_argument("--orders", type=int, default=300, help="scale: orders per step [300]")
    parser.add_argument("--rate", type=float, default=6.0, help="replicas: orders/s [6]")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args()
    root = Path("data/chaos")
    if args.what == "replicas":
        report = asyncio.run(replicas_run(root, rate=args.rate))
    else:
        report = asyncio.run(scale_run(root, args.service, orders=args.orders))
    shown = json.dumps(report, indent=2)
    print(shown)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(shown)
    return 1 if report.get("violations") else 0


if __name__ == "__main__":
    raise SystemExit(main())
