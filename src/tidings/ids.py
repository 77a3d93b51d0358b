"""Time-ordered unique ids (UUID version 7, RFC 9562) for envelopes.

Ids that sort by creation time keep database indexes compact and make logs and dead-letter
listings read in order, which random UUIDv4 ids do not.

Every event gets one, so this is on the hot path: the 62 random bits come from a generator
seeded once from `os.urandom` (and re-seeded in a forked child, so two processes never share a
sequence) rather than a system call per id, and the text is formatted from the integer without
building a `uuid.UUID`. Uniqueness needs unpredictable seeds, not a cryptographic generator:
the ids are not secrets.
"""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_random = random.Random(os.urandom(32))


def _reseed() -> None:
    _random.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def uuid7() -> str:
    """Return a new UUIDv7 as a string; monotonic within this process even within one millisecond."""
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:  # 12-bit counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _counter = 0
        counter = _counter
        rand = _random.getrandbits(62)
    value = (now_ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
