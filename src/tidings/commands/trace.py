"""`tidings trace ID --database DASHBOARD_DB`: the causal tree of one business transaction.

ID may be a correlation id, an event id or a subject (an order id): whatever the dashboard's
recorder stored leads to the transaction it belongs to. Each step shows its type, the service
that published it and the time since the event that caused it; the header shows the end-to-end
time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.tree import Tree
from sqlalchemy import or_, select

from tidings.dashboard import queries
from tidings.dashboard.recorder import events
from tidings.errors import ConfigurationError
from tidings.store import Store


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("trace", help="the causal tree of a transaction, order or event, with timings")
    parser.add_argument("id", help="a correlation id, an event id or a subject (an order id)")
    parser.add_argument("--database", required=True, help="the dashboard's database URL (what its recorder stored)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    parser.set_defaults(handler=lambda args: asyncio.run(trace(args)))


async def trace(args: argparse.Namespace) -> int:
    store = await Store.open(args.database, migrate=False, read_only=True)
    try:
        async with store.session() as session, session.begin():
            match = or_(events.c.correlation == args.id, events.c.event_id == args.id, events.c.subject == args.id)
            correlation = await session.scalar(select(events.c.correlation).where(match).limit(1))
            found = await queries.transaction(session, correlation) if correlation else None
    finally:
        await store.close()
    if found is None:
        raise ConfigurationError(f"nothing recorded for {args.id!r} (a correlation id, event id or subject)")
    first = min(_when(event) for event in found["events"])
    for root in found["roots"]:
        _time_hops(root, None)
    found["end_to_end_ms"] = round((max(_when(event) for event in found["events"]) - first) * 1000, 1)
    if args.json:
        sys.stdout.write(json.dumps(found, default=str, indent=2) + "\n")
        return 0
    summary = f"{len(found['events'])} events, {found['end_to_end_ms']:g} ms end to end"
    tree = Tree(f"[bold]{found['correlation']}[/]  {summary}")
    for root in found["roots"]:
        _draw(tree, root)
    Console(width=160).print(tree)
    return 0


def _when(event: dict[str, Any]) -> float:
    stamp = event.get("time")
    return datetime.fromisoformat(stamp).timestamp() if stamp else float(event["recorded_at"])


def _time_hops(node: dict[str, Any], parent: dict[str, Any] | None) -> None:
    node["hop_ms"] = None if parent is None else round((_when(node) - _when(parent)) * 1000, 1)
    for child in node["children"]:
        _time_hops(child, node)


def _draw(tree: Tree, node: dict[str, Any]) -> None:
    hop = "" if node["hop_ms"] is None else f"  +{node['hop_ms']:g} ms"
    subject = f"  {node['subject']}" if node.get("subject") else ""
    branch = tree.add(f"[bold]{node['type']}[/]  from [cyan]{node['source']}[/]{hop}{subject}")
    for child in node["children"]:
        _draw(branch, child)
