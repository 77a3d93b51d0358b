"""Reaching one node of a cluster whose URL names several (`RabbitConfig.endpoints`).

Each node is tried once, in turn from `start`: a node that is down on a reachable host refuses at
once, one that does not answer gets `NODE_TIMEOUT` seconds. A one-node URL gets the same limit: a
listener can take the TCP connection and never answer (a broker shutting down or still booting),
and an attempt without a limit would wait for it forever. A node that refuses the credentials
or the vhost ends the round (the others share users and vhosts: they would refuse too).
"""

from __future__ import annotations

import asyncio
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
) -> tuple[int, AbstractConnection]:
    """(index, connection) of the first node from `start` on that accepts a connection; raises
    the last node's error when none does (whatever it is: aiormq raises more than its own errors
    when a connection ends during the handshake), and a `refused` error at once."""
    if len(endpoints) == 1:
        return 0, await aio_pika.connect(endpoints[0], timeout=NODE_TIMEOUT)
    error: BaseException | None = None
    for step in range(len(endpoints)):
        index = (start + step) % len(endpoints)
        try:
            return index, await aio_pika.connect(endpoints[index], timeout=NODE_TIMEOUT)
        except refused:
            raise
        except Exception as failed:
            log.debug("node %d of %d did not accept a connection: %r", index + 1, len(endpoints), failed)
            error = failed
    assert error is not None
    raise error


def failed_attempt(error: BaseException) -> bool:
    """Whether `error`, raised by a (re)connection attempt, means that attempt failed (the next one
    follows) rather than that the task making it is being cancelled.

    Every `Exception` does: aiormq raises more than its own errors when a connection ends in the
    middle of its handshake (`StopAsyncIteration` when the end of the stream is read before the first
    frame, as it is on uvloop when a node shutting down takes a connection and closes it at once),
    and a reconnection loop that let one through ended there, for good. So does a `CancelledError`
    nobody asked for (the task is not being cancelled): aiormq fails the futures of a connection it
    closes with one."""
    if isinstance(error, Exception):
        return True
    if not isinstance(error, asyncio.CancelledError):
        return False  # KeyboardInterrupt, SystemExit
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


def log_failed_attempt(
    doing: str, where: str, attempt: int, error: BaseException, delay: float, usual: tuple[type[BaseException], ...]
) -> None:
    """Log a failed attempt: a warning for attempts 1, 2, 4, 8... and every 60th, else debug; with
    its traceback when `error` is not one of the `usual` broker errors (where an odd one came from)."""
    loud = attempt & (attempt - 1) == 0 or attempt % 60 == 0
    log.log(
        logging.WARNING if loud else logging.DEBUG,
        "%s to %s failed (attempt %d: %r), next attempt in %.2fs",
        doing,
        where,
        attempt,
        error,
        delay,
        exc_info=None if isinstance(error, usual) else error,
    )
