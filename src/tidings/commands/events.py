"""`tidings events tail --database DASHBOARD_DB`: the newest recorded events, and with `--follow`
the ones that arrive while it runs (what the dashboard's recorder stores; no broker group is
created, so tailing takes nothing from the services)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
from typing import Any

from sqlalchemy import select

from tidings.commands.output import add_json_flag, emit
from tidings.dashboard.recorder import events
from tidings.store import Store

COLUMNS = ["seq", "time", "type", "source", "subject", "correlation"]
POLL = 0.5


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("events", help="recorded events: `tidings events tail`")
    parser.add_argument("action", choices=["tail"])
    parser.add_argument("--database", required=True, help="the dashboard's database URL")
    parser.add_argument("--type", help="only this event type")
    parser.add_argument("--subject", help="only this subject (an order id, say)")
    parser.add_argument("--limit", type=int, default=20, help="how many of the newest to show first")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    add_json_flag(parser)
    parser.set_defaults(handler=lambda args: asyncio.run(tail(args)))


async def tail(args: argparse.Namespace) -> int:
    store = await Store.open(args.database, migrate=False, read_only=True)
    try:
        rows = list(reversed(await _rows(store, args, after=0, limit=args.limit, newest=True)))
        emit(args, rows, title="events", columns=COLUMNS)
        last = rows[-1]["seq"] if rows else 0
        while args.follow:
            await asyncio.sleep(POLL)
            rows = await _rows(store, args, after=last, limit=1000, newest=False)
            if rows:
                emit(args, rows, title="", columns=COLUMNS)
                last = rows[-1]["seq"]
    finally:
        await store.close()
    return 0


async def _rows(
    store: Store, args: argparse.Namespace, *, after: int, limit: int, newest: bool
) -> list[dict[str, Any]]:
    statement = select(events).where(events.c.seq > after)
    if args.type:
        statement = statement.where(events.c.type == args.type)
    if args.subject:
        statement = statement.where(events.c.subject == args.subject)
    statement = statement.order_by(events.c.seq.desc() if newest else events.c.seq).limit(limit)
    async with store.session() as session, session.begin():
        found = await session.execute(statement)
        return [
            {
                "seq": row.seq,
                "time": row.time or datetime.datetime.fromtimestamp(row.recorded_at, datetime.UTC).isoformat(),
                "type": row.type,
                "source": row.source,
                "subject": row.subject,
                "correlation": row.correlation,
            }
            for row in found
        ]
