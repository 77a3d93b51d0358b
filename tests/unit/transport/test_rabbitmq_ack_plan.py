"""Properties of the coalesced settlement plan (ADR 0037), against a model of a channel's unacked
deliveries as the broker keeps them: whatever the order and grouping in which deliveries are
acked or requeued, no frame names a tag the broker no longer holds (it would close the channel),
a multiple ack covers only deliveries the consumer settled, and each delivery ends as settled."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.transport.rabbitmq.acks import ChannelAcks, Frame, plan


def apply(unacked: set[int], frames: list[Frame], meant: set[int]) -> set[int]:
    """The broker's side: settle `frames`, refusing what it would refuse; returns the tags settled."""
    done = set()
    for frame in frames:
        assert frame.tag in unacked, f"{frame} names a tag the broker no longer holds"
        covered = {tag for tag in unacked if tag <= frame.tag} if frame.multiple else {frame.tag}
        assert covered <= meant, f"{frame} settles {sorted(covered - meant)}, which nobody settled"
        unacked -= covered
        done |= covered
    return done


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(1, 40),
    order=st.randoms(use_true_random=False),
    turn_sizes=st.lists(st.integers(1, 8), min_size=1, max_size=40),
    requeued=st.sets(st.integers(1, 40), max_size=6),
    held=st.sets(st.integers(1, 40), max_size=3),
)
def test_every_settlement_lands_once_and_no_frame_covers_an_unsettled_delivery(
    count: int, order: random.Random, turn_sizes: list[int], requeued: set[int], held: set[int]
) -> None:
    held = {tag for tag in held if tag <= count}  # never settled in this run
    tags = [tag for tag in range(1, count + 1) if tag not in held]
    order.shuffle(tags)
    unacked, floor, settled = set(range(1, count + 1)), 1, set[int]()
    position, turn = 0, 0
    while position < len(tags):
        size = turn_sizes[turn % len(turn_sizes)]
        batch, position, turn = tags[position : position + size], position + size, turn + 1
        acks = [tag for tag in batch if tag not in requeued]
        requeues = [tag for tag in batch if tag in requeued]
        frames, floor = plan(floor, settled, acks, requeues)
        assert apply(unacked, frames, set(batch)) == set(batch)
        assert [frame.tag for frame in frames if frame.requeue] == requeues
        assert len(frames) <= len(batch)
        assert all(tag >= floor for tag in settled), "settled keeps only tags above the floor"
    assert unacked == held
    assert floor == (min(held) if held else count + 1)


def test_acks_in_tag_order_in_one_turn_are_one_frame() -> None:
    frames, floor = plan(1, set(), [3, 1, 2, 4], [])
    assert (frames, floor) == ([Frame(4, multiple=True)], 5)


def test_acks_above_an_unsettled_delivery_go_one_by_one_until_it_settles() -> None:
    settled: set[int] = set()
    frames, floor = plan(1, settled, [2, 3], [])
    assert (frames, floor, settled) == ([Frame(2), Frame(3)], 1, {2, 3})
    frames, floor = plan(floor, settled, [1, 5], [])
    assert (frames, floor, settled) == ([Frame(1, multiple=True), Frame(5)], 4, {5})


class _BrokenChannel:
    """A channel whose writes fail with an error no broker raises (a bug): pure logic under test."""

    is_closed = False

    async def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> None:
        raise RuntimeError(f"cannot write ack {tag}")


async def test_an_unexpected_error_writing_a_turn_reaches_every_caller_of_that_turn() -> None:
    channel = _BrokenChannel()
    acks = ChannelAcks(channel)  # type: ignore[arg-type]
    outcomes = await asyncio.gather(acks.ack(1), acks.ack(2), return_exceptions=True)
    assert [str(outcome) for outcome in outcomes] == ["cannot write ack 2", "cannot write ack 2"]
