"""`uuid7`: RFC 9562 version-7 ids, ordered by creation within a process, distinct across a fork."""

from __future__ import annotations

import multiprocessing
import time
import uuid

from tidings.ids import uuid7


def test_an_id_is_a_version_7_rfc_uuid_carrying_its_creation_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    parsed = uuid.UUID(uuid7())
    after = time.time_ns() // 1_000_000
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_ids_sort_in_creation_order_and_never_repeat_within_one_millisecond() -> None:
    ids = [uuid7() for _ in range(20_000)]  # many per millisecond: the counter orders them
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(text) == 36 and text.count("-") == 4 for text in ids)


def _child_ids(queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put([uuid7() for _ in range(50)])


def test_a_forked_child_does_not_repeat_its_parents_random_bits() -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = context.Queue()
    child = context.Process(target=_child_ids, args=(queue,))
    child.start()
    theirs = queue.get(timeout=30)
    child.join(timeout=30)
    ours = [uuid7() for _ in range(50)]
    random_bits = {int(text.replace("-", ""), 16) & (2**62 - 1) for text in ours}
    assert not random_bits & {int(text.replace("-", ""), 16) & (2**62 - 1) for text in theirs}
