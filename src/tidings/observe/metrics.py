"""Prometheus metrics of one service, in the text exposition format (version 0.0.4).

Each `Service` owns one `ServiceMetrics`: no process-global registry, so several services in
one process (tests, the demo) keep their figures apart. Counters and the handler-duration
histogram are updated in memory on the hot path; gauges that cost a query (outbox backlog,
consumer lag, parked outbox rows, the outbox's oldest row, dead letters, background tasks) are
passed in when the endpoint is scraped. Every routed type's `handled_total` series exist from the
start, at 0 for each outcome (`declare`), so an `increase(...[5m]) > 0` alert sees the first retry.
Names and units follow Prometheus' conventions (`_total` counters, base units, `_seconds`);
`promtool check metrics` passes on the text (tests/integration/test_health_and_gauges.py, and on
every shop service in tests/system/test_shop_observability.py).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""Seconds; the boundaries OpenTelemetry's messaging conventions give for processing durations."""
OUTCOMES = ("handled", "duplicate", "retried", "dead_lettered")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Histogram:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.count += 1
        self.sum += seconds


@dataclass(slots=True)
class Gauges:
    """What a scrape read from the database, the broker and the supervisor; None: not read."""

    outbox_pending: int | None = None
    outbox_parked: int | None = None
    outbox_oldest_age: float | None = None
    """Seconds since the oldest unpublished outbox row was committed; 0 when the outbox is empty."""
    backlog: Mapping[str, int] | None = None
    dead_letters: Mapping[str, int] | None = None
    tasks: Mapping[str, str] = field(default_factory=dict)
    """Background task -> its supervisor state (`running`, `restarting (n)`, `failed: ...`)."""
    restarts: Mapping[str, int] = field(default_factory=dict)


class ServiceMetrics:
    """What one service did, by event type; `render()` gives the scrape text."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.handled: Counter[tuple[str, str]] = Counter()
        """(event type, outcome) -> deliveries."""
        self.published: Counter[str] = Counter()
        """Event type -> messages the broker confirmed."""
        self._durations: dict[str, _Histogram] = {}

    def declare(self, event_types: Iterable[str]) -> None:
        """Start the `handled_total` series of these types at 0 for every outcome."""
        for event_type in event_types:
            for outcome in OUTCOMES:
                self.handled[(event_type, outcome)] += 0

    def record_delivery(self, event_type: str, outcome: str, seconds: float | None = None) -> None:
        """One delivery ended with `outcome`; `seconds` is how long its handler ran, if it ran."""
        self.handled[(event_type, outcome)] += 1
        if seconds is not None:
            histogram = self._durations.get(event_type)
            if histogram is None:
                histogram = self._durations[event_type] = _Histogram()
            histogram.observe(seconds)

    def record_published(self, event_types: Iterable[str]) -> None:
        self.published.update(event_types)

    def render(
        self,
        *,
        outbox_pending: int | None = None,
        backlog: Mapping[str, int] | None = None,
        outbox_parked: int | None = None,
        gauges: Gauges | None = None,
    ) -> str:
        """The exposition text; the gauges appear only when their values are given."""
        gauges = gauges or Gauges(outbox_pending=outbox_pending, outbox_parked=outbox_parked, backlog=backlog)
        service = _label(self.service)
        lines = [
            "# HELP tidings_messages_handled_total Deliveries a service finished, by event type and outcome.",
            "# TYPE tidings_messages_handled_total counter",
        ]
        for (event_type, outcome), count in sorted(self.handled.items()):
            lines.append(
                f'tidings_messages_handled_total{{service="{service}",type="{_label(event_type)}",'
                f'outcome="{outcome}"}} {count}'
            )
        lines += [
            "# HELP tidings_handler_duration_seconds How long handlers ran, their transaction included.",
            "# TYPE tidings_handler_duration_seconds histogram",
        ]
        for event_type, histogram in sorted(self._durations.items()):
            labels = f'service="{service}",type="{_label(event_type)}"'
            cumulative = 0
            for bound, count in zip((*DURATION_BUCKETS, math.inf), histogram.buckets, strict=True):
                cumulative += count
                edge = "+Inf" if bound == math.inf else repr(bound)
                lines.append(f'tidings_handler_duration_seconds_bucket{{{labels},le="{edge}"}} {cumulative}')
            lines.append(f"tidings_handler_duration_seconds_sum{{{labels}}} {histogram.sum!r}")
            lines.append(f"tidings_handler_duration_seconds_count{{{labels}}} {histogram.count}")
        lines += [
            "# HELP tidings_messages_published_total Messages the broker confirmed, by event type.",
            "# TYPE tidings_messages_published_total counter",
        ]
        for event_type, count in sorted(self.published.items()):
            lines.append(f'tidings_messages_published_total{{service="{service}",type="{_label(event_type)}"}} {count}')
        lines += _gauges(service, gauges)
        return "\n".join(lines) + "\n"


def _gauges(service: str, gauges: Gauges) -> list[str]:
    lines: list[str] = []

    def gauge(name: str, help_: str, values: Mapping[str, float | int], label: str = "") -> None:
        lines.extend((f"# HELP {name} {help_}", f"# TYPE {name} gauge"))
        for key, value in sorted(values.items()):
            extra = f',{label}="{_label(key)}"' if label else ""
            lines.append(f'{name}{{service="{service}"{extra}}} {value!r}')

    if gauges.outbox_pending is not None:
        pending = {"": gauges.outbox_pending}
        gauge("tidings_outbox_pending", "Committed events the relay has not published yet.", pending)
    if gauges.outbox_parked is not None:
        parked = {"": gauges.outbox_parked}
        gauge("tidings_outbox_parked", "Outbox rows set aside because they cannot be published.", parked)
    if gauges.outbox_oldest_age is not None:
        age = {"": round(gauges.outbox_oldest_age, 3)}
        gauge("tidings_outbox_oldest_age_seconds", "Age of the oldest event the relay has not published.", age)
    if gauges.backlog is not None:
        gauge("tidings_consumer_backlog", "Messages a consumer group has not acked yet (lag).", gauges.backlog, "group")
    if gauges.dead_letters is not None:
        letters = gauges.dead_letters
        gauge("tidings_dead_letters", "Dead letters a consumer group keeps (counted up to 10000).", letters, "group")
    if gauges.tasks:
        up = {name: int(state == "running") for name, state in gauges.tasks.items()}
        gauge("tidings_background_task_up", "1 while the supervisor runs the background task, else 0.", up, "task")
        restarts = {name: gauges.restarts.get(name, 0) for name in gauges.tasks}
        gauge("tidings_background_task_crashes", "Crashes of the task in a row (0: healthy).", restarts, "task")
    return lines


def _label(value: str) -> str:
    """A label value escaped as the exposition format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
