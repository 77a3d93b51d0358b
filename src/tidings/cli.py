"""The `tidings` command: run a service, inspect and repair a broker, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tidings import cli_outbox
from tidings.errors import ConfigurationError, TidingsError
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
        raise ConfigurationError(f"cannot import {module_name!r} for {target}: {error}") from None
    service = getattr(module, attribute, None)
    if not isinstance(service, Service):
        raise ConfigurationError(f"{target} is not a tidings.Service (got {type(service).__name__})")
    return service


async def _dead_letters(args: argparse.Namespace) -> int:
    async with await connect(args.broker) as transport:
        if args.action == "list":
            letters = await transport.dead_letters(args.group, limit=args.limit)
            for letter in letters:
                fields = (letter.id, letter.type or "?", letter.event_id or "?", f"attempts={letter.attempts}")
                print("\t".join((*fields, letter.reason)))
            print(f"{len(letters)} dead letter(s) in group {args.group}")
        elif args.action == "replay":
            print(f"replayed {await transport.replay(args.group, args.ids or None)} dead letter(s)")
        else:
            print(f"purged {await transport.purge(args.group, args.ids or None)} dead letter(s)")
    return 0


async def _backlog(args: argparse.Namespace) -> int:
    async with await connect(args.broker) as transport:
        for group, count in sorted((await transport.backlog()).items()):
            print(f"{group}\t{count}")
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

    dead = commands.add_parser("dead-letters", help="list, replay or purge a group's dead letters")
    dead.add_argument("action", choices=["list", "replay", "purge"])
    dead.add_argument("--broker", required=True, help="broker URL, e.g. sqlite:///data/broker.db")
    dead.add_argument("--group", required=True)
    dead.add_argument("--id", dest="ids", action="append", help="only these dead letters (repeatable)")
    dead.add_argument("--limit", type=int, default=100)

    backlog = commands.add_parser("backlog", help="messages each consumer group has not yet acked")
    backlog.add_argument("--broker", required=True)

    cli_outbox.add_parser(commands)

    demo = commands.add_parser("demo", help="two services exchanging events on the embedded broker")
    demo.add_argument("--events", type=int, default=500)
    demo.add_argument("--data-dir", type=Path, default=Path("data/demo"))

    spec = commands.add_parser("asyncapi", help="write the AsyncAPI 3.0 document of some services")
    spec.add_argument("targets", nargs="+", help="module:attribute of each tidings.Service")
    spec.add_argument("--title", default="Tidings services")
    spec.add_argument("--version", default="1.0.0", help="the document's (the API's) version")
    spec.add_argument("--output", "-o", type=Path, help="write here instead of standard output")

    dashboard = commands.add_parser("dashboard", help="record events and serve the web dashboard")
    dashboard.add_argument("--broker", required=True, help="broker URL, e.g. sqlite:///data/broker.db")
    dashboard.add_argument("--database", required=True, help="the dashboard's own database URL")
    dashboard.add_argument("--events", required=True, help="module of the Event classes to record")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8080)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))  # its INFO is setup noise
    try:
        if args.command == "run":
            service = load_service(args.target)
            if args.metrics_port is not None:
                service.metrics_port, service.metrics_host = args.metrics_port, args.metrics_host
            try:
                asyncio.run(service.run())
            except BackgroundTaskFailed as failure:
                print(f"tidings: {failure}", file=sys.stderr)
                return failure.exit_code
            return 0
        if args.command == "dead-letters":
            return asyncio.run(_dead_letters(args))
        if args.command == "backlog":
            return asyncio.run(_backlog(args))
        if args.command == "outbox":
            return asyncio.run(cli_outbox.run(args))
        if args.command == "asyncapi":
            return _asyncapi(args)
        if args.command == "dashboard":
            from tidings.dashboard.server import serve_dashboard

            options = {name: getattr(args, name) for name in ("broker", "database", "events", "host", "port")}
            asyncio.run(serve_dashboard(**options))
            return 0
        from tidings.demo import run_demo

        logging.getLogger("tidings").setLevel(logging.WARNING)
        args.data_dir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_demo(args.events, args.data_dir))
    except TidingsError as error:
        print(f"tidings: {error}", file=sys.stderr)
        return 2
