"""`tidings outbox status|parked|replay|purge --database URL`: a service database's outbox.

- `status`: backlog, oldest unsent age, published and parked counts per source.
- `parked`: the rows the relay set aside because they cannot be published, with the reason.
- `replay [ids]`: put parked rows (all, or those ids) back at the end of the outbox.
- `purge ids`: delete parked rows for good (ids required).

Nothing here migrates the database: a database no service of this version has opened is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from tidings.commands.output import add_json_flag, emit
from tidings.errors import ConfigurationError
from tidings.store import Store, normalise_url, outbox_status, parked

STATUS_COLUMNS = ["source", "pending", "oldest_pending_age", "parked", "published", "last_published_age", "relay_owner"]
PARKED_COLUMNS = ["id", "source", "event_id", "type", "size", "parked_at", "reason"]


def add_parser(commands: Any) -> None:
    """The `outbox` subcommand, on the `tidings` parser's subparsers `commands`."""
    outbox = commands.add_parser("outbox", help="outbox of a service database: status, parked rows, replay, purge")
    actions = outbox.add_subparsers(dest="action", required=True)
    helps = {
        "status": "backlog, oldest unsent age, published and parked counts per source",
        "parked": "the rows set aside because they cannot be published, with the reason",
        "replay": "put parked rows (all, or the ids given) back at the end of the outbox",
        "purge": "delete the parked rows with the ids given, for good",
    }
    for name, text in helps.items():
        action = actions.add_parser(name, help=text)
        action.add_argument("--database", required=True, help="the service's database URL")
        if name != "status":
            action.add_argument("--source", help="only the rows of this service")
        if name == "parked":
            action.add_argument("--limit", type=int, default=100, help="list at most this many")
        if name in ("replay", "purge"):
            action.add_argument("ids", nargs="*", type=int, help="parked row ids (`tidings outbox parked`)")
        else:
            add_json_flag(action)


async def run(args: argparse.Namespace) -> int:
    if args.action == "status":
        status = await outbox_status(args.database)
        rows = [dataclasses.asdict(source) for source in status.sources]
        title = f"outbox: {status.pending} pending, {status.parked} parked, {status.published} published"
        emit(args, rows, title=title, columns=STATUS_COLUMNS)
        return 0
    if args.action == "purge" and not args.ids:
        raise ConfigurationError(
            "outbox purge needs the ids of the parked rows to delete (see `tidings outbox parked`)"
        )
    store = await _open(args.database, read_only=args.action == "parked")
    try:
        async with store.session() as session, session.begin():
            if args.action == "parked":
                found = await parked.list(session, source=args.source, limit=args.limit)
                rows = [
                    {**dataclasses.asdict(row), "parked_at": _when(row.parked_at), "created_at": _when(row.created_at)}
                    for row in found
                ]
                emit(args, rows, title=f"{len(rows)} parked outbox row(s)", columns=PARKED_COLUMNS)
            elif args.action == "replay":
                count = await parked.replay(session, args.ids or None, source=args.source)
                print(f"replayed {count} parked row(s) into the outbox")
            else:
                count = await parked.purge(session, args.ids, source=args.source)
                print(f"purged {count} parked row(s)")
    except DBAPIError as error:
        raise ConfigurationError(
            f"{args.database} has no parked outbox rows table (has a service of this version run on it?): {error.orig}"
        ) from None
    finally:
        await store.close()
    return 0


def _when(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


async def _open(database: str, *, read_only: bool) -> Store:
    url = normalise_url(database)
    if url.drivername.startswith("sqlite") and not await asyncio.to_thread(os.path.exists, url.database or ""):
        raise ConfigurationError(f"no SQLite database at {url.database!r}")
    return await Store.open(url, migrate=False, pool_size=1, read_only=read_only)
