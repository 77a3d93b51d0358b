"""What the RabbitMQ link counts as a failed (re)connection attempt, to be followed by the next
one, and what ends its reconnecting: only the cancellation of its own task."""

from __future__ import annotations

import asyncio

import pytest

from tidings.transport.rabbitmq.nodes import failed_attempt


@pytest.mark.parametrize(
    "error", [StopAsyncIteration(), ConnectionResetError(), TimeoutError(), RuntimeError("closed"), ValueError()]
)
async def test_any_exception_of_an_attempt_is_a_failed_attempt(error: Exception) -> None:
    assert failed_attempt(error)


async def test_a_cancellation_nobody_asked_for_is_a_failed_attempt() -> None:
    """aiormq fails the futures of a connection it closes with `CancelledError`."""
    assert failed_attempt(asyncio.CancelledError())


async def test_cancelling_the_task_making_the_attempt_is_not_a_failed_attempt() -> None:
    seen: list[bool] = []
    started = asyncio.Event()

    async def attempt() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as error:
            seen.append(failed_attempt(error))
            raise

    task = asyncio.create_task(attempt())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False]


def test_an_interrupt_is_not_a_failed_attempt() -> None:
    assert not failed_attempt(KeyboardInterrupt())
