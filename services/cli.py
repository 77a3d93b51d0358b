"""`shop`: run the reference shop, drive load through its API, check its invariants.

shop up    [--data-dir D] [--broker URL] [--database postgresql://...]   run until Ctrl-C
shop load  --orders N --rate R [--api URL] [--out FILE]                 place orders, measure
shop check [--data-dir D | --database postgresql://...] [--business-only]   verify invariants
shop demo  [--orders 200 --rate 50] [--keep]                            up + load + check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from services.settings import OPTIONAL, SERVICES, Settings, add_arguments
from tidings.errors import ConfigurationError

DEFAULT_API = "http://127.0.0.1:8000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shop", description="The Tidings reference shop.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the five services and keep them running")
    add_arguments(up)
    up.add_argument("--log-level", default="INFO", help="log level of the services [INFO]")
    every = ", ".join(SERVICES + OPTIONAL)
    up.add_argument("--services", default=",".join(SERVICES), help=f"comma-separated, of {every} [all five]")
    up.add_argument("--dashboard", action="store_true", help="also run the dashboard (docs/dashboard.md)")
    _signal_arguments(up)
    up.add_argument(
        "--replicas", action="append", default=[], metavar="SERVICE=N", help="run N processes of SERVICE (repeatable)"
    )
    load = commands.add_parser("load", help="place orders through the HTTP API and measure settling")
    _load_arguments(load)
    add_arguments(load)
    check = commands.add_parser("check", help="verify the invariants across every service's database")
    add_arguments(check)
    check.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the shop to settle [30]")
    check.add_argument(
        "--business-only",
        action="store_true",
        help="only the business invariants: skip accepted orders, dead letters, backlog and outbox",
    )
    demo = commands.add_parser("demo", help="start the shop, run a short load and a check, then stop")
    add_arguments(demo)
    _load_arguments(demo, orders=200, rate=50.0)
    demo.add_argument("--keep", action="store_true", help="keep the shop running afterwards (Ctrl-C stops)")
    demo.add_argument("--fresh", action="store_true", help="delete the data dir's shop databases first (make run does)")
    demo.add_argument("--dashboard", action="store_true", help="also run the dashboard (docs/dashboard.md)")
    demo.add_argument("--log-level", default="INFO")
    _signal_arguments(demo)
    provision = commands.add_parser("provision", help="a broker user and database role per service (docs/security.md)")
    add_arguments(provision)  # --broker and --database: the administrator's URLs
    provision.add_argument("--out", type=Path, required=True, help="credentials file to write (mode 600)")
    provision.add_argument("--user-prefix", default="shop-", help="prefix of the user and role names [shop-]")
    provision.add_argument("--signing-keys", type=Path, help="also write signing keys into this folder")
    return parser


def _signal_arguments(parser: argparse.ArgumentParser) -> None:
    """One switch per signal (docs/observability.md); `--metrics-port` comes with the settings."""
    parser.add_argument("--otlp-endpoint", help="export every service's spans over OTLP/HTTP here [OTEL_* env]")
    parser.add_argument("--log-format", choices=["human", "json"], help="service logs: human or json [human]")


def _signals_to_env(args: argparse.Namespace) -> None:
    """The children inherit the environment: the OpenTelemetry variable and the shop's log format."""
    if getattr(args, "otlp_endpoint", None):
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.otlp_endpoint
    if getattr(args, "log_format", None):
        os.environ["SHOP_LOG_FORMAT"] = args.log_format


def _load_arguments(parser: argparse.ArgumentParser, *, orders: int = 300, rate: float = 50.0) -> None:
    parser.add_argument("--orders", type=int, default=orders, help=f"orders to place [{orders}]")
    parser.add_argument(
        "--rate", type=float, default=rate, help=f"orders per second, 0 = as fast as possible [{rate:g}]"
    )
    parser.add_argument("--api", help="orders API URL [from the running shop's data dir, else http://127.0.0.1:8000]")
    parser.add_argument("--load-concurrency", type=int, default=64, help="requests in flight at most [64]")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the order mix [1]")
    parser.add_argument("--settle-timeout", type=float, default=120.0, help="seconds to wait for settling [120]")
    parser.add_argument("--out", type=Path, help="write the figures as JSON to this file")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env().with_args(args)
        _signals_to_env(args)
        with contextlib.suppress(KeyboardInterrupt):
            if args.command == "up":
                from services.supervisor import up

                services = [name.strip() for name in args.services.split(",") if name.strip()]
                if args.dashboard and "dashboard" not in services:
                    services.append("dashboard")
                unknown = set(services) - set(SERVICES + OPTIONAL)
                if unknown:
                    known = ", ".join(SERVICES + OPTIONAL)
                    print(f"unknown service(s): {', '.join(sorted(unknown))}; the shop has {known}")
                    return 2
                replicas = _replicas(args.replicas)
                return asyncio.run(up(settings, services=services, replicas=replicas, log_level=args.log_level))
            if args.command == "load":  # on the shop's loop: it shares the machine with what it measures
                from services.kit.service import event_loop_factory

                with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
                    return runner.run(_load(settings, args, Console()))
            if args.command == "check":
                return asyncio.run(_check(settings, args.wait, delivery=not args.business_only))
            if args.command == "demo":
                return asyncio.run(_demo(settings, args))
            if args.command == "provision":
                from services.provision import provision

                made = asyncio.run(provision(settings, args.out, prefix=args.user_prefix, keys=args.signing_keys))
                print(f"[shop] {len(made)} identities written to {args.out}; run shop up --identities {args.out}")
                return 0
    except (ConfigurationError, TimeoutError) as error:
        print(f"[shop] {error}")
        return 2
    return 130


def _replicas(given: Sequence[str]) -> dict[str, int]:
    """`--replicas payments=2 --replicas orders=3` as {"payments": 2, "orders": 3}."""
    replicas: dict[str, int] = {}
    for item in given:
        name, _, count = item.partition("=")
        if not count.strip().isdigit():
            raise ConfigurationError(f"--replicas wants SERVICE=N, got {item!r}")
        replicas[name.strip()] = int(count)
    return replicas


def _api(settings: Settings, args: argparse.Namespace) -> str:
    if args.api:
        return str(args.api)
    from services.supervisor import read_ready_file

    info = read_ready_file(settings, "orders")
    return str(info["api"]) if info and "api" in info else DEFAULT_API


async def _load(settings: Settings, args: argparse.Namespace, console: Console) -> int:
    from services.load import ACCEPTED_FILE, print_report, run_load, write_report

    api = _api(settings, args)
    console.print(f"placing {args.orders} orders at {args.rate:g}/s through {api}")
    report = await run_load(
        api,
        args.orders,
        args.rate,
        concurrency=args.load_concurrency,
        seed=args.seed,
        settle_timeout=args.settle_timeout,
        console=console,
        accepted_file=settings.data_dir / ACCEPTED_FILE,
    )
    print_report(report, console)
    if args.out is not None:
        write_report(report, args.out)
        console.print(f"figures written to {args.out}")
    return 0 if report.unsettled == 0 and report.placed > 0 else 1


async def _check(settings: Settings, wait: float, *, delivery: bool = True) -> int:
    from services.check import check

    try:
        found, _ = await check(settings, wait=wait, delivery=delivery)
    except Exception as error:  # a database that is missing or unreachable: say which, plainly
        print(f"cannot read the shop's databases ({settings.database or settings.data_dir}): {error}")
        return 2
    return 1 if found else 0


def _start_clean(settings: Settings, console: Console, *, fresh: bool) -> None:
    """Say whether the demo starts from empty databases; with `fresh`, delete the old ones first."""
    if settings.database is not None or not settings.data_dir.is_dir():
        return
    old = sorted(path for path in settings.data_dir.iterdir() if path.suffix in (".db", ".db-wal", ".db-shm"))
    if not old:
        return
    if fresh:
        for path in old:
            path.unlink()
        console.print(
            f"\\[shop] starting clean: deleted {len(old)} database file(s) of an earlier run in {settings.data_dir}/"
        )
    else:
        note = "totals include earlier runs; --fresh starts clean"
        console.print(f"\\[shop] reusing the databases in {settings.data_dir}/ ({note})")


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from services.supervisor import Supervisor

    console = Console()
    _start_clean(settings, console, fresh=args.fresh)
    services = (*SERVICES, "dashboard") if args.dashboard else SERVICES
    supervisor = Supervisor(
        settings, services=services, log_level=args.log_level, say=lambda line: console.print(f"\\[shop] {line}")
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        info = await supervisor.start()
        args.api = args.api or info.get("api")
        console.print(f"\\[shop] API {args.api}, docs {args.api}/docs; logs in {settings.log_dir}")
        if args.dashboard:
            console.print(f"\\[shop] dashboard {supervisor.ready_info('dashboard').get('dashboard')}")
        status = await _load(settings, args, console)
        status = max(status, await _check(settings, 30.0))
        if args.keep:
            console.print(f"\\[shop] still running: try `curl {args.api}/orders?limit=5`; Ctrl-C stops")
            await stop.wait()
        return status
    finally:
        await supervisor.stop()


if __name__ == "__main__":
    sys.exit(main())
