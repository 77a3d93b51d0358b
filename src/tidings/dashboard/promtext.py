"""What the charts take from one service's `/metrics` text: handled counts, the handler-duration
histogram, outbox backlog and oldest age, and consumer lag. Parsed with `prometheus_client`'s
parser (a well-kept one) rather than by hand."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass(slots=True)
class Scrape:
    """One service's figures at one moment."""

    handled: float = 0.0
    """Deliveries finished, every outcome."""
    retried: float = 0.0
    dead_lettered: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    """Upper bound (seconds) -> cumulative handler runs, summed over event types."""
    outbox_pending: float | None = None
    outbox_oldest_age: float | None = None
    backlog: dict[str, float] = field(default_factory=dict)


def parse(text: str) -> Scrape:
    """The figures in a Prometheus exposition `text`; unknown metrics are ignored."""
    scrape = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "tidings_messages_handled_total":
                scrape.handled += value
                if labels.get("outcome") == "retried":
                    scrape.retried += value
                elif labels.get("outcome") == "dead_lettered":
                    scrape.dead_lettered += value
            elif name == "tidings_handler_duration_seconds_bucket":
                bound = float(labels["le"])
                scrape.buckets[bound] = scrape.buckets.get(bound, 0.0) + value
            elif name == "tidings_outbox_pending":
                scrape.outbox_pending = (scrape.outbox_pending or 0.0) + value
            elif name.startswith("tidings_outbox_oldest"):  # the oldest unsent row's age, in seconds
                scrape.outbox_oldest_age = max(scrape.outbox_oldest_age or 0.0, value)
            elif name == "tidings_consumer_backlog" and "group" in labels:
                scrape.backlog[labels["group"]] = value
    return scrape


def quantile(q: float, before: Mapping[float, float], after: Mapping[float, float]) -> float | None:
    """The `q` quantile (seconds) of the runs observed between two cumulative histograms, with
    linear interpolation inside a bucket as Prometheus' `histogram_quantile` does; None if no run."""
    bounds: Sequence[float] = sorted(after)
    counts = [after[bound] - before.get(bound, 0.0) for bound in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower  # in the overflow bucket: the highest finite bound is all we know
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, count
    return lower
