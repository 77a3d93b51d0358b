"""Nothing lost, nothing stuck, nothing applied twice: hostile messages written straight to each
broker with its raw client, mixed with good events, consumed by a real `Service` with a SQLite
database (so the inbox is in play).

On each broker, every hostile message of `hostile.KINDS` ends as exactly one dead letter whose
reason starts with its `Malformation` kind (`not-json`, `missing-attribute`,
`invalid-attribute`, `unknown-type`, `schema-mismatch`, `too-large`), names the field when one
field is wrong, quotes none of the payload (`hostile.PII`) and is short; it was delivered once,
or, for what another member of the group may know (a newer version; an unknown type where
members share a stream of types: RabbitMQ, Kafka), as often as the handover policy allows,
never retried as if the problem were transient. (On Kafka a type no member of the group ever
subscribed to is another group's event, skipped by design; so a member that knew the unknown
types subscribes and leaves first, as in a rolled-back deploy, and they are handed out.)
No handler ran on invalid data, every good event was handled exactly once, and the group's
backlog ends at 0. The counts per kind are in the test's report (`record_property`) and printed.

Which kind names which problem: bytes that are not JSON and truncated JSON are `not-json`;
JSON nested too deeply to parse, data over 1 MiB and CloudEvents attributes over
`MAX_ATTRIBUTE_CHARS` are `too-large`; a content type that is not JSON, a bad `specversion`,
`time` or `dataschema` are `invalid-attribute`; an unknown type, and a version that is newer
than the handler's or has no upcaster, are `unknown-type`; amounts as a float, a string or
negative fail the strict `amount_cents` and are `schema-mismatch` naming `amount_cents`.

A reused id with different content (the id and source of a good event already handled, other
valid data) is a duplicate: the inbox acks it without running the handler, and no dead letter
is made. CloudEvents says a consumer may treat events with the same source and id as the same
event, so a producer that reuses them has published one event twice as far as the consumer can
know; telling "the same event again" from "a conflicting event" would take a fingerprint of
the content in the inbox, which the inbox does not keep (its key is the group and the id; with
the source as well, the same source and id stay a duplicate). The test asserts that each one
was acked as a duplicate (`stats["duplicates"]`) and that the handler saw only the first data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.bad_input import brokers, scenario
from tests.integration.bad_input.hostile import KINDS, REUSED_ID

SEED = 20240610


def test_the_plan_is_deterministic_and_big_enough() -> None:
    first, again = scenario.plan(SEED), scenario.plan(SEED)
    assert [(m.tag, m.attributes, m.body) for m in first.first] == [(m.tag, m.attributes, m.body) for m in again.first]
    assert len(first.hostile) * 3 >= 1_000, "the suite sends at least 1,000 hostile messages over three brokers"
    assert len({*KINDS, REUSED_ID}) >= 12
    assert len({m.tag for m in (*first.first, *first.second)}) == len(first.first) + len(first.second)


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("sqlite"),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ],
)
async def test_hostile_messages_become_dead_letters_naming_the_problem(
    broker: str, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    started = time.monotonic()
    messages = scenario.plan(SEED)
    async with brokers.target(broker, tmp_path) as target:
        result = await scenario.run(target, tmp_path, messages)
    counts = scenario.verify(messages, result)
    sent = {kind: count for kind, (_, count) in KINDS.items()}
    assert {kind: counts.get(kind, 0) for kind in sent} == sent
    assert counts[REUSED_ID] == len(messages.reused)
    ordered = {kind: counts[kind] for kind in (*KINDS, REUSED_ID)}
    report = {"broker": broker, "seconds": round(time.monotonic() - started, 1), "counts": ordered}
    record_property(f"bad_input_{broker}", json.dumps(report))
    print(json.dumps(report))
