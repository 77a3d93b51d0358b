"""The Kafka ledger's contracts that mutation testing found unasserted: what a fresh ledger knows,
what a slot carries, key order after out-of-order settlements, presettled offsets, the clock's
default, and metadata that must fit the broker's limit even when it is cut."""

from __future__ import annotations

import json
import time

from tidings.transport.kafka.ledger import METADATA_LIMIT, Ledger, Slot, parse_metadata


def admit_all(ledger: Ledger, keys: list[bytes | None], start: int = 0) -> list[Slot]:
    slots = [ledger.admit(start + n, key, f"record-{start + n}") for n, key in enumerate(keys)]
    assert all(slot is not None for slot in slots)
    return [slot for slot in slots if slot is not None]


def test_a_fresh_ledger_is_active_and_has_nothing_new_to_commit() -> None:
    """The committer commits only when the checkpoint differs from what is committed: a ledger
    that has read nothing must not commit again (nor commit an offset it does not have)."""
    ledger = Ledger(5)
    assert ledger.active is True
    assert ledger.handing_out is True
    assert ledger.committed == (5, "")
    assert ledger.checkpoint() == ledger.committed
    carried = '{"h":2,"p":[[0,1,3,0]]}'
    assert Ledger(5, carried).committed == (5, carried)
    assert Ledger().committed is None


def test_a_slot_carries_its_record_and_its_ledger() -> None:
    """The delivery reads the record (value, headers, partition) and settles through the ledger."""
    ledger = Ledger(0)
    (slot,) = admit_all(ledger, [b"k"])
    assert slot.record == "record-0"
    assert slot.ledger is ledger
    assert ledger.slots() == [slot]
    assert ledger.slot_at(0) is slot
    assert ledger.slot_at(1) is None


def test_slots_lists_the_unsettled_records_in_offset_order() -> None:
    ledger = Ledger(0)
    slots = admit_all(ledger, [b"a", None, b"a", b"b"])
    ledger.settle(slots[1])
    assert ledger.slots() == [slots[0], slots[2], slots[3]]
    assert ledger.slot_at(1) is None
    assert ledger.slot_at(2) is slots[2]


def test_a_record_admitted_after_its_key_tail_was_settled_out_of_order_still_waits() -> None:
    """After a rebalance the newest record of a key can be settled before the head; a record of
    that key read afterwards must still wait for the head."""
    ledger = Ledger(0)
    first, second = admit_all(ledger, [b"k", b"k"])
    assert ledger.settle(second) is first
    (third,) = admit_all(ledger, [b"k"], start=2)
    assert not ledger.heads(third)
    assert not ledger.due(third, now=0)
    assert ledger.settle(first) is third
    assert ledger.due(third, now=0)


def test_settling_the_last_of_three_records_of_a_key_returns_the_head() -> None:
    ledger = Ledger(0)
    first, second, third = admit_all(ledger, [b"k", b"k", b"k"])
    assert ledger.settle(third) is first
    assert ledger.heads(first)
    assert not ledger.heads(second)
    assert ledger.settle(first) is second
    assert ledger.settle(second) is None
    (fourth,) = admit_all(ledger, [b"k"], start=3)
    assert ledger.due(fourth, now=0)


def test_due_reads_the_clock_when_no_time_is_given() -> None:
    ledger = Ledger(0)
    later, earlier = admit_all(ledger, [None, None])
    later.not_before = time.time() + 3600
    earlier.not_before = time.time() - 1
    assert not ledger.due(later)
    assert ledger.due(earlier)


def test_the_next_offset_to_read_can_be_presettled() -> None:
    ledger = Ledger(0)
    ledger.presettle(0)
    assert ledger.admit(0, None, "record-0") is None
    assert ledger.checkpoint() == (1, "")


def test_a_partition_with_no_commit_yet_takes_presettled_offsets() -> None:
    ledger = Ledger()
    ledger.presettle(3)
    assert ledger.admit(2, None, "record-2") is not None
    assert ledger.admit(3, None, "record-3") is None


def test_a_cut_checkpoint_still_commits_the_first_unsettled_offset() -> None:
    ledger = Ledger(0)
    slots = admit_all(ledger, [None] * 1000)
    for n, slot in enumerate(slots):
        slot.deliveries = n
    checkpoint = ledger.checkpoint()
    assert checkpoint is not None
    offset, metadata = checkpoint
    assert offset == 0
    carried, until = parse_metadata(offset, metadata)
    assert 0 < until < 1000
    assert sorted(carried) == list(range(until))


def test_the_metadata_fits_the_limit_for_records_handed_out_thousands_of_times() -> None:
    """The size estimate assumes compact JSON: runs with large counts must still fit."""
    ledger = Ledger(0)
    slots = admit_all(ledger, [None] * 1000)
    for n, slot in enumerate(slots):
        slot.deliveries = 1000 + n
        slot.not_before = 1_700_000_000.123
    checkpoint = ledger.checkpoint()
    assert checkpoint is not None
    _, metadata = checkpoint
    assert len(metadata) <= METADATA_LIMIT
    assert len(json.loads(metadata)["p"]) > 90  # the cut keeps what fits, not a token amount
