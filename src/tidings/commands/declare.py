"""`tidings declare --broker URL --group G TYPE...`: create a consumer group before its first consumer.

Brokers fan an event out to the groups that exist when it is published; a group declared here
receives everything published from now on, even while none of its consumers runs.
"""

from __future__ import annotations

import argparse
import asyncio

from tidings.commands.output import add_json_flag, emit
from tidings.transport.base import connect


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("declare", help="create a consumer group for some types before it consumes")
    parser.add_argument("types", nargs="+", help="the event types the group receives")
    parser.add_argument("--group", required=True, help="the group (a service's name)")
    parser.add_argument("--broker", required=True, help="broker URL")
    add_json_flag(parser)
    parser.set_defaults(handler=lambda args: asyncio.run(declare(args)))


async def declare(args: argparse.Namespace) -> int:
    async with await connect(args.broker) as transport:
        subscription = await transport.subscribe(args.group, args.types, prefetch=1)
        await subscription.close()
        backlog = (await transport.backlog()).get(args.group, 0)
    emit(
        args,
        [{"group": args.group, "types": ", ".join(sorted(args.types)), "backlog": backlog}],
        title="declared",
        columns=["group", "types", "backlog"],
    )
    return 0
