"""The dashboard: an observer service recording every event it is told about, and a web page
showing the live stream, business transactions as causal trees, lag and dead letters.

See docs/decisions/0009-dashboard.md and docs/dashboard.md.
"""

from tidings.dashboard.recorder import GROUP, Recorder, event_classes, record_events

__all__ = ["GROUP", "Recorder", "event_classes", "record_events"]
