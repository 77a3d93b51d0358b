"""The garbage collector's view of a running service's heap (ADR 0038)."""

from __future__ import annotations

import gc


def freeze_start_up_heap() -> None:
    """Collect once, then move every object alive to the collector's permanent generation.

    Why: a started service holds about a hundred thousand objects that live as long as the
    process (modules, classes, pools, compiled statements), and every full collection would walk
    them all again, a pause of tens of milliseconds that finds nothing to free. Frozen objects
    are still freed by reference counting; only a reference cycle among them that becomes
    garbage later is never reclaimed, so this is for a process's start-up heap, once.
    """
    gc.collect()
    gc.freeze()
