"""Property: whatever records a partition holds and in whatever order their heads are settled, the
ledger's checkpoint never commits past an unsettled record, and a new owner resuming from it hands
out every record still unsettled (at least once: never lost)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.transport.kafka.ledger import Ledger, Slot

KEYS = st.sampled_from([None, b"a", b"b", b"c"])
STEPS = st.lists(st.one_of(st.tuples(st.just("admit"), KEYS), st.tuples(st.just("settle"), st.integers(0, 50))))


@settings(max_examples=100, deadline=None)
@given(start=st.integers(0, 1_000), steps=STEPS)
def test_the_checkpoint_never_passes_an_unsettled_record(start: int, steps: list[tuple[str, object]]) -> None:
    ledger = Ledger(start)
    unsettled: dict[int, Slot] = {}
    offset = start
    for action, argument in steps:
        if action == "admit":
            slot = ledger.admit(offset, argument, f"record-{offset}")  # type: ignore[arg-type]
            assert slot is not None
            unsettled[offset] = slot
            offset += 1
        else:
            heads = [slot for slot in unsettled.values() if ledger.heads(slot)]  # what may be handed out
            if not heads:
                continue
            chosen = heads[int(argument) % len(heads)]  # type: ignore[call-overload]
            ledger.settle(chosen)
            del unsettled[chosen.offset]
        checkpoint = ledger.checkpoint()
        assert checkpoint is not None
        committed, metadata = checkpoint
        if unsettled:
            assert committed <= min(unsettled), f"committed {committed} past unsettled {min(unsettled)}"
        else:
            assert (committed, metadata) == (offset, ""), "everything settled: the commit covers all"
        successor = Ledger(committed, metadata)  # a takeover reads on from the committed offset
        handed = {n for n in range(committed, offset) if successor.admit(n, None, f"record-{n}") is not None}
        assert set(unsettled) <= handed, f"lost after a takeover: {sorted(set(unsettled) - handed)}"


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(KEYS, min_size=1, max_size=30))
def test_only_the_oldest_unsettled_record_of_a_key_is_due(keys: list[bytes | None]) -> None:
    ledger = Ledger(0)
    slots = [ledger.admit(n, key, n) for n, key in enumerate(keys)]
    for slot in slots:
        assert slot is not None
        earlier = [other for other in slots[: slot.offset] if other is not None and other.key == slot.key]
        assert ledger.due(slot, now=0) == (slot.key is None or not earlier)
