"""`tidings publish TYPE --data JSON --events MODULE --broker URL`: send one event, validated first.

The data is validated against the registered event class before anything is sent, so a typo is
a one-line error naming the field, not a dead letter later.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from pydantic import ValidationError

from tidings.commands.output import add_json_flag, emit
from tidings.dashboard.recorder import event_classes
from tidings.envelope import Envelope
from tidings.errors import ConfigurationError
from tidings.transport.base import connect


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("publish", help="publish one event, validated against its class")
    parser.add_argument("type", help="the event type, e.g. shop.order.created")
    parser.add_argument("--data", required=True, help="the event's data as a JSON object")
    parser.add_argument("--events", required=True, help="module (or registry) of the Event classes")
    parser.add_argument("--broker", required=True, help="broker URL, e.g. sqlite:///data/broker.db")
    parser.add_argument("--source", default="urn:tidings:cli", help="the CloudEvents source (default urn:tidings:cli)")
    parser.add_argument("--correlation", help="the business transaction's id (default: the event's own id)")
    add_json_flag(parser)
    parser.set_defaults(handler=lambda args: asyncio.run(publish(args)))


async def publish(args: argparse.Namespace) -> int:
    classes = {cls.event_type: cls for cls in event_classes(args.events)}
    event_class = classes.get(args.type)
    if event_class is None:
        raise ConfigurationError(f"no event type {args.type!r} in {args.events}; known: {', '.join(sorted(classes))}")
    try:
        event = event_class.model_validate(json.loads(args.data))
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"--data is not JSON: {error.msg} at column {error.colno}") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc'])) or '<root>'}: {item['msg']}" for item in error.errors())
        raise ConfigurationError(f"--data does not match {args.type!r}: {problems}") from None
    envelope = Envelope.wrap(event, source=args.source, correlationid=args.correlation)
    async with await connect(args.broker) as transport:
        await transport.publish([envelope])
    row = {"id": envelope.id, "type": envelope.type, "subject": envelope.subject, "correlation": envelope.correlationid}
    emit(args, [row], title="published", columns=["id", "type", "subject", "correlation"])
    return 0
