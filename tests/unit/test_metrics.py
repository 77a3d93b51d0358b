"""The Prometheus text of a service: parsed back with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tidings.observe.metrics import DURATION_BUCKETS, ServiceMetrics


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_histogram_and_gauges_parse_back() -> None:
    metrics = ServiceMetrics("inventory")
    for seconds in (0.003, 0.02, 0.02, 3.0, 12.0):
        metrics.record_delivery("shop.order.created", "handled", seconds)
    metrics.record_delivery("shop.order.created", "retried", 0.5)
    metrics.record_delivery("(malformed)", "dead_lettered")
    metrics.record_published(["shop.stock.reserved", "shop.stock.reserved"])

    parsed = samples(metrics.render(outbox_pending=3, backlog={"inventory": 7}, outbox_parked=2))

    created = {("service", "inventory"), ("type", "shop.order.created")}
    assert parsed[("tidings_messages_handled_total", frozenset({*created, ("outcome", "handled")}))] == 5
    assert parsed[("tidings_messages_handled_total", frozenset({*created, ("outcome", "retried")}))] == 1
    malformed = {("service", "inventory"), ("type", "(malformed)"), ("outcome", "dead_lettered")}
    assert parsed[("tidings_messages_handled_total", frozenset(malformed))] == 1
    bucket = "tidings_handler_duration_seconds_bucket"
    assert parsed[(bucket, frozenset({*created, ("le", "0.005")}))] == 1
    assert parsed[(bucket, frozenset({*created, ("le", "0.025")}))] == 3
    assert parsed[(bucket, frozenset({*created, ("le", "5.0")}))] == 5  # 0.5 (the retry) counts too
    assert parsed[(bucket, frozenset({*created, ("le", "+Inf")}))] == 6
    assert parsed[("tidings_handler_duration_seconds_count", frozenset(created))] == 6
    assert abs(parsed[("tidings_handler_duration_seconds_sum", frozenset(created))] - 15.543) < 1e-9
    never_ran = frozenset({("service", "inventory"), ("type", "(malformed)")})
    assert ("tidings_handler_duration_seconds_count", never_ran) not in parsed
    reserved = {("service", "inventory"), ("type", "shop.stock.reserved")}
    assert parsed[("tidings_messages_published_total", frozenset(reserved))] == 2
    assert parsed[("tidings_outbox_pending", frozenset({("service", "inventory")}))] == 3
    assert parsed[("tidings_outbox_parked", frozenset({("service", "inventory")}))] == 2
    assert parsed[("tidings_consumer_backlog", frozenset({("service", "inventory"), ("group", "inventory")}))] == 7


def test_gauges_are_left_out_when_not_read_and_labels_are_escaped() -> None:
    metrics = ServiceMetrics('odd "name"\\x')
    metrics.record_delivery("t", "handled", 0.01)
    text = metrics.render()
    assert "tidings_outbox_pending" not in text
    assert "tidings_outbox_parked" not in text
    assert "tidings_consumer_backlog" not in text
    parsed = samples(text)
    key = frozenset({("service", 'odd "name"\\x'), ("type", "t"), ("outcome", "handled")})
    assert parsed[("tidings_messages_handled_total", key)] == 1


def test_every_bucket_boundary_is_emitted_in_order() -> None:
    metrics = ServiceMetrics("s")
    metrics.record_delivery("t", "handled", DURATION_BUCKETS[-1])  # exactly on the last edge
    bucket = "tidings_handler_duration_seconds_bucket"
    lines = [line for line in metrics.render().splitlines() if line.startswith(bucket)]
    assert [line.split('le="')[1].split('"')[0] for line in lines] == [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]
    assert lines[-2].endswith(" 1")  # le="10.0" includes 10.0 itself
    assert lines[-3].endswith(" 0")
