"""A consumer channel's settlement frames, coalesced per loop turn (ADR 0037).

On a quorum queue every `basic.ack` is a command in the queue's Raft log, so the broker pays
per ack frame, not per message: one `multiple=true` ack for twenty deliveries cost it a third
of the CPU of twenty acks on this project's machine. An ack with `multiple=true` settles every
unacked delivery of the channel up to its tag, so it is sent only over a run of deliveries that
are all settled.

Every settlement of a consumer channel goes through its `ChannelAcks` (`acks_of(channel)`): the
acks and the requeueing nacks queued during one loop turn are planned together (`plan`) and
written by one task, in order. A caller's `ack` or `requeue` returns once its frame is in the
channel's write queue, as `basic_ack(wait=False)` did. On a channel that has closed the frames
are dropped: the broker has put the channel's unsettled messages back already.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from aiormq.abc import AbstractChannel as RawChannel

from tidings.transport.rabbitmq.link import BROKER_ERRORS


@dataclass(frozen=True, slots=True)
class Frame:
    """One settlement frame: `basic.ack` (`requeue` False) or `basic.nack` with requeue."""

    tag: int
    multiple: bool = False
    requeue: bool = False


def plan(floor: int, settled: set[int], acks: Collection[int], requeues: Sequence[int]) -> tuple[list[Frame], int]:
    """The frames settling `acks` and `requeues` on a channel whose tags below `floor` are all
    settled, and above it those in `settled`; returns them and the new floor, and updates
    `settled` (it keeps only tags above the new floor).

    Requeues go first, one frame each. Then one multiple ack covers the run of settled tags
    from the floor, if the acks reach it, and each ack above the first unsettled tag is a frame
    of its own: a multiple ack never covers an unsettled tag, and no tag is settled twice."""
    frames = [Frame(tag, requeue=True) for tag in requeues]
    settled.update(requeues)
    waiting = set(acks)
    highest_of_run = 0
    while True:
        if floor in waiting:
            waiting.discard(floor)
            highest_of_run = floor
        elif floor in settled:
            settled.discard(floor)
        else:
            break
        floor += 1
    if highest_of_run:
        frames.append(Frame(highest_of_run, multiple=True))
    for tag in sorted(waiting):
        frames.append(Frame(tag))
        settled.add(tag)
    return frames, floor


class ChannelAcks:
    """The settlements of one consumer channel (module docstring)."""

    def __init__(self, channel: RawChannel) -> None:
        self._channel = weakref.ref(channel)  # the channel keys this object in a weak mapping
        self._floor = 1  # the broker numbers a channel's deliveries 1, 2, 3, ...
        self._settled: set[int] = set()
        self._acks: list[int] = []
        self._requeues: list[int] = []
        self._turn: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def ack(self, tag: int) -> None:
        """Ack delivery `tag`; returns once its frame (perhaps a multiple ack) is queued."""
        self._acks.append(tag)
        await self._queued()

    async def requeue(self, tag: int) -> None:
        """Give delivery `tag` back to its queue; returns once the nack is queued."""
        self._requeues.append(tag)
        await self._queued()

    async def _queued(self) -> None:
        if self._turn is None:
            loop = asyncio.get_running_loop()
            self._turn = loop.create_future()
            if self._writer is None:
                self._writer = loop.create_task(self._write())
        await asyncio.shield(self._turn)  # one caller's cancellation must not cancel the others' wait

    async def _write(self) -> None:
        """Write the turns queued so far, one after the other, so frames keep their planned order.
        An unexpected error reaches the callers waiting on the turn; a cancellation (shutdown)
        lets them return, since the channel closes with the deliveries unsettled."""
        turn: asyncio.Future[None] | None = None
        outcome: Exception | None = None
        try:
            while self._turn is not None:
                turn, self._turn = self._turn, None
                acks, requeues, self._acks, self._requeues = self._acks, self._requeues, [], []
                frames, self._floor = plan(self._floor, self._settled, acks, requeues)
                await self._send(frames)
                turn.set_result(None)
        except Exception as error:
            outcome = error
        finally:
            self._writer = None
            for waiting in (turn, self._turn):
                if waiting is not None and not waiting.done():
                    if outcome is None:
                        waiting.set_result(None)
                    else:
                        waiting.set_exception(outcome)
            self._turn = None

    async def _send(self, frames: list[Frame]) -> None:
        channel = self._channel()
        if channel is None or channel.is_closed:
            return
        with contextlib.suppress(*BROKER_ERRORS):  # connection gone: the broker requeued them
            for frame in frames:
                if frame.requeue:
                    await channel.basic_nack(frame.tag, requeue=True, wait=False)
                else:
                    await channel.basic_ack(frame.tag, multiple=frame.multiple, wait=False)


_by_channel: weakref.WeakKeyDictionary[RawChannel, ChannelAcks] = weakref.WeakKeyDictionary()


def acks_of(channel: RawChannel) -> ChannelAcks:
    """The settlements of `channel`, made on first use and gone with the channel."""
    found = _by_channel.get(channel)
    if found is None:
        found = _by_channel[channel] = ChannelAcks(channel)
    return found
