"""The Kafka subscription's per-partition bookkeeping, without a broker."""

from __future__ import annotations

import json

from tidings.transport.kafka.ledger import METADATA_LIMIT, Ledger, State, parse_metadata


def admit_all(ledger: Ledger, keys: list[bytes | None], start: int = 0) -> list:
    slots = [ledger.admit(start + n, key, f"record-{start + n}") for n, key in enumerate(keys)]
    assert all(slot is not None for slot in slots)
    return slots


def test_a_key_waits_for_its_previous_record_and_other_keys_do_not() -> None:
    ledger = Ledger(0)
    a1, b1, a2, none = admit_all(ledger, [b"a", b"b", b"a", None])
    assert [ledger.due(slot, now=0) for slot in (a1, b1, a2, none)] == [True, True, False, True]

    assert ledger.settle(a1) is a2
    assert ledger.due(a2, now=0)
    assert ledger.settle(b1) is None


def test_a_retry_delay_holds_the_record_and_its_key() -> None:
    ledger = Ledger(0)
    first, second = admit_all(ledger, [b"k", b"k"])
    first.not_before = 100.0
    assert not ledger.due(first, now=99.0)
    assert ledger.due(first, now=100.0)
    assert not ledger.due(second, now=1000.0)


def test_the_checkpoint_is_the_first_unsettled_offset_and_lists_the_rest() -> None:
    ledger = Ledger(10)
    slots = admit_all(ledger, [b"a", b"b", b"c", b"d"], start=10)
    slots[0].deliveries = 2
    slots[2].not_before = 5.0
    ledger.settle(slots[1])
    ledger.settle(slots[3])

    offset, metadata = ledger.checkpoint() or (None, "")
    assert offset == 10
    assert json.loads(metadata) == {"h": 4, "p": [[0, 1, 2, 0], [2, 1, 0, 5000]]}

    ledger.settle(slots[0])
    ledger.settle(slots[2])
    assert ledger.checkpoint() == (14, "")


def test_consecutive_records_alike_are_one_run() -> None:
    ledger = Ledger(0)
    slots = admit_all(ledger, [None] * 500)
    for slot in slots[:300]:
        slot.deliveries = 1
    ledger.settle(slots[400])
    offset, metadata = ledger.checkpoint() or (0, "")
    assert json.loads(metadata) == {"h": 500, "p": [[0, 300, 1, 0], [300, 100, 0, 0], [401, 99, 0, 0]]}
    carried, until = parse_metadata(offset, metadata)
    assert until == 500
    assert sorted(carried) == [n for n in range(500) if n != 400]


def test_nothing_to_commit_before_the_first_record_of_an_uncommitted_partition() -> None:
    ledger = Ledger()
    assert ledger.checkpoint() is None
    assert ledger.admit(7, None, "irrelevant", relevant=False) is None
    assert ledger.checkpoint() == (8, "")


def test_a_takeover_skips_settled_records_and_keeps_counts_and_delays() -> None:
    before = Ledger(0)
    slots = admit_all(before, [b"a", b"b", b"c"])
    slots[0].deliveries, slots[0].not_before = 3, 42.0
    before.settle(slots[1])
    offset, metadata = before.checkpoint() or (0, "")

    after = Ledger(offset, metadata)
    first = after.admit(0, b"a", "record-0")
    assert first is not None
    assert (first.deliveries, first.not_before) == (3, 42.0)
    assert after.admit(1, b"b", "record-1") is None  # settled by the previous owner
    third = after.admit(2, b"c", "record-2")
    assert third is not None
    assert third.deliveries == 0
    fourth = after.admit(3, b"d", "record-3")  # beyond what the previous owner read
    assert fourth is not None
    assert (fourth.deliveries, fourth.not_before) == (0, 0.0)


def test_metadata_that_does_not_fit_is_cut_and_the_rest_counts_as_unread() -> None:
    ledger = Ledger(0)
    slots = admit_all(ledger, [None] * 1000)
    for n, slot in enumerate(slots):
        slot.deliveries = n  # no two alike: one run per record
        slot.not_before = 1_700_000_000.123
    offset, metadata = ledger.checkpoint() or (0, "")
    assert offset == 0
    assert len(metadata) <= METADATA_LIMIT
    carried, until = parse_metadata(offset, metadata)
    assert until < 1000
    assert sorted(carried) == list(range(until))


def test_foreign_or_damaged_metadata_means_everything_from_the_offset_is_unsettled() -> None:
    for metadata in ("", "not json", '{"x": 1}', '{"h": 2, "p": [[0]]}'):
        assert parse_metadata(5, metadata) == ({}, -1)
        ledger = Ledger(5, metadata)
        assert ledger.admit(5, None, "record") is not None


def test_presettled_records_are_skipped_when_they_arrive() -> None:
    ledger = Ledger(0)
    ledger.presettle(1)
    (first,) = admit_all(ledger, [None])
    assert ledger.admit(1, None, "record-1") is None
    assert first.state is State.WAITING
    ledger.settle(first)
    assert first.state is State.SETTLED
    assert ledger.checkpoint() == (2, "")


def test_settling_a_record_behind_its_key_head_keeps_the_head_and_the_rest_in_order() -> None:
    # A settlement that survives a rebalance can settle a record that does not head its key.
    ledger = Ledger(0)
    k1, k2, k3 = admit_all(ledger, [b"k", b"k", b"k"])
    assert [ledger.heads(slot) for slot in (k1, k2, k3)] == [True, False, False]
    assert ledger.settle(k2) is k1
    assert ledger.heads(k1)
    assert not ledger.heads(k3)
    assert ledger.settle(k1) is k3
    assert ledger.heads(k3)
    assert ledger.settle(k3) is None
    assert len(ledger) == 0
    assert ledger.checkpoint() == (3, "")
