"""The `tidings` command: run a service, inspect and repair a broker, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tidings.commands import declare, events, outbox, publish, trace
from tidings.commands.output import add_json_flag, emit
from tidings.errors import ConfigurationError, TidingsError
from tidings.observe import setup
from tidings.runtime.supervisor import BackgroundTaskFailed
from tidings.service import Service
from tidings.transport.base import connect


def load_service(target: str) -> Service:
    """Import `module:attribute` and check that it names a `Service`."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"expected module:attribute, got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigurationError(f"cannot import {module_name!r} for {target} (from {os.getcwd()}): {error}") from None
    if not hasattr(module, attribute):
        raise ConfigurationError(f"module {module_name!r} has no attribute {attribute!r}")
    service = getattr(module, attribute)
    if not isinstance(service, Service):
        raise ConfigurationError(f"{target} is not a tidings.Service (got {type(service).__name__})")
    return service


async def _dead_letters(args: argparse.Namespace) -> int:
    async with await connect(args.broker) as transport:
        if args.action == "list":
            letters = await transport.dead_letters(args.group, limit=args.limit)
            rows = [
                {"id": x.id, "type": x.type, "event_id": x.event_id, "attempts": x.attempts, "reason": x.reason}
                for x in letters
            ]
            title = f"{len(letters)} dead letter(s) in group {args.group}"
            emit(args, rows, title=title, columns=["id", "type", "event_id", "attempts", "reason"])
        elif args.action == "replay":
            print(f"replayed {await transport.replay(args.group, args.ids or None)} dead letter(s)")
        else:
            print(f"purged {await transport.purge(args.group, args.ids or None)} dead letter(s)")
    return 0


async def _backlog(args: argparse.Namespace) -> int:
    async with await connect(args.broker) as transport:
        rows = [{"group": group, "backlog": count} for group, count in sorted((await transport.backlog()).items())]
    emit(args, rows, title="unacked messages per group", columns=["group", "backlog"])
    return 0


def _asyncapi(args: argparse.Namespace) -> int:
    from tidings.asyncapi import document

    services = [load_service(target) for target in args.targets]
    text = json.dumps(document(services, title=args.title, version=args.version), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidings", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a service until SIGTERM or Ctrl-C")
    run.add_argument("target", help="module:attribute naming a tidings.Service")
    run.add_argument("--metrics-port", type=int, help="serve GET /metrics and /health on this port")
    run.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port (default 127.0.0.1)")
    run.add_argument("--otlp-endpoint", help="export spans over OTLP/HTTP here (sets OTEL_EXPORTER_OTLP_ENDPOINT)")
    run.add_argument("--log-format", choices=["human", "json"], help="human (default) or json: one line per event")

    dead = commands.add_parser("dead-letters", help="list, replay or purge a group's dead letters")
    dead.add_argument("action", choices=["list", "replay", "purge"])
    dead.add_argument("--broker", required=True, help="broker URL, e.g. sqlite:///data/broker.db")
    dead.add_argument("--group", required=True)
    dead.add_argument("--id", dest="ids", action="append", help="only these dead letters (repeatable)")
    dead.add_argument("--limit", type=int, default=100)
    add_json_flag(dead)

    backlog = commands.add_parser("backlog", help="messages each consumer group has not yet acked")
    backlog.add_argument("--broker", required=True)
    add_json_flag(backlog)

    outbox.add_parser(commands)

    demo = commands.add_parser("demo", help="two services exchanging events on the embedded broker")
    demo.add_argument("--events", type=int, default=500)
    demo.add_argument("--data-dir", type=Path, default=Path("data/demo"))

    spec = commands.add_parser("asyncapi", help="write the AsyncAPI 3.1 document of some services")
    spec.add_argument("targets", nargs="+", help="module:attribute of each tidings.Service")
    spec.add_argument("--title", default="Tidings services")
    spec.add_argument("--version", default="1.0.0", help="the document's (the API's) version")
    spec.add_argument("--output", "-o", type=Path, help="write here instead of standard output")

    new = commands.add_parser("new", help="write a new, runnable service package (with a test)")
    new.add_argument("kind", choices=["service"])
    new.add_argument("name", help="the package and service name, e.g. loyalty")
    new.add_argument("--consumes", default="shop.order.confirmed", help="the event type it handles")
    new.add_argument("--directory", type=Path, default=Path("."), help="where to write it (default: here)")
    dashboard = commands.add_parser("dashboard", help="record events and serve the web dashboard")
    dashboard.add_argument("--broker", required=True, help="broker URL, e.g. sqlite:///data/broker.db")
    dashboard.add_argument("--database", required=True, help="the dashboard's own database URL")
    dashboard.add_argument("--events", required=True, help="module of the Event classes to record")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.add_argument("--trusted-hosts", help="extra host names the dashboard answers, comma-separated")
    dashboard.add_argument("--max-age", type=float, help="seconds recorded events are kept [7 days]")
    dashboard.add_argument("--max-bytes", type=int, help="size the recorded events may take [256 MiB]")
    for command in (publish, declare, events, trace):
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The console script. The working directory is on the import path, as with `python -m`, so
    `tidings run mymodule:svc` and `--events mymodule` find the modules where the user is."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))  # its INFO is setup noise
    try:
        if hasattr(args, "handler"):
            status: int = args.handler(args)
            return status
        if args.command == "run":
            service = load_service(args.target)
            if args.metrics_port is not None:
                service.metrics_port, service.metrics_host = args.metrics_port, args.metrics_host
            if args.otlp_endpoint:
                os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.otlp_endpoint
            setup.configure(service.name, log_format=args.log_format, log_level=args.log_level)
            try:
                asyncio.run(service.run())
            except BackgroundTaskFailed as failure:
                print(f"tidings: {failure}", file=sys.stderr)
                return failure.exit_code
            finally:
                setup.shutdown()  # the spans still buffered
            return 0
        if args.command == "dead-letters":
            return asyncio.run(_dead_letters(args))
        if args.command == "backlog":
            return asyncio.run(_backlog(args))
        if args.command == "outbox":
            return asyncio.run(outbox.run(args))
        if args.command == "asyncapi":
            return _asyncapi(args)
        if args.command == "new":
            from tidings.scaffold import new_service

            written = new_service(args.name, args.directory, consumes=args.consumes)
            print(f"wrote {len(written)} files in {args.directory / args.name}/")
            print(f"test: pytest {args.directory / args.name}/tests; run: tidings run {args.name}.service:service")
            return 0
        if args.command == "dashboard":
            from tidings.dashboard.server import serve_dashboard

            names = ("broker", "database", "events", "host", "port", "trusted_hosts", "max_age", "max_bytes")
            options = {name: getattr(args, name) for name in names}  # the admin token: environment only
            asyncio.run(serve_dashboard(**options))
            return 0
        from tidings.demo import run_demo

        logging.getLogger("tidings").setLevel(logging.WARNING)
        args.data_dir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_demo(args.events, args.data_dir))
    except TidingsError as error:
        print(f"tidings: {error}", file=sys.stderr)
        return 2
    except (OSError, ConnectionError) as error:  # a server that is down or refuses us: one line, no repr
        print(f"tidings: cannot connect: {error.strerror or error}", file=sys.stderr)
        return 2
