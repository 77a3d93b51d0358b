"""Reaching one node of a cluster whose URL names several (`RabbitConfig.endpoints`).

Each node is tried once, in turn from `start`: a node that is down on a reachable host refuses at
once, one that does not answer gets `NODE_TIMEOUT` seconds. A one-node URL gets the same limit: a
listener can take the TCP connection and never answer (a broker shutting down or still booting),
and an attempt without a limit would wait for it forever. A node that refuses the credentials
or the vhost ends the round (the others share users and vhosts: they would refuse too).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractConnection

log = logging.getLogger("tidings.transport.rabbitmq")

NODE_TIMEOUT = 10.0
"""Seconds a node has to accept a connection and finish the AMQP handshake before the attempt
fails (and, in a several-node URL, the next node is tried)."""


async def connect_any(
    endpoints: Sequence[str],
    start: int,
    refused: tuple[type[BaseException], ...],
    retriable: tuple[type[BaseException], ...],
) -> tuple[int, AbstractConnection]:
    """(index, connection) of the first node from `start` on that accepts a connection; raises
    the last node's error when none does, and a `refused` error at once."""
    if len(endpoints) == 1:
        return 0, await aio_pika.connect(endpoints[0], timeout=NODE_TIMEOUT)
    error: BaseException | None = None
    for step in range(len(endpoints)):
        index = (start + step) % len(endpoints)
        try:
            return index, await aio_pika.connect(endpoints[index], timeout=NODE_TIMEOUT)
        except refused:
            raise
        except retriable as failed:
            log.debug("node %d of %d did not accept a connection: %r", index + 1, len(endpoints), failed)
            error = failed
    assert error is not None
    raise error
