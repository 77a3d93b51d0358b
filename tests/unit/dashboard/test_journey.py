"""The journey's pure logic: order by event time, hops, handlers, dead letters, replays, sagas."""

from __future__ import annotations

from typing import Any

from tidings.dashboard.journey import journey
from tidings.dashboard.sagas import phase


def event(seq: int, id_: str, type_: str, source: str, at: str, cause: str | None) -> dict[str, Any]:
    return {
        "seq": seq,
        "id": id_,
        "type": type_,
        "source": source,
        "subject": "o-1",
        "correlation": "c",
        "causation": cause or id_,
        "time": f"2026-01-01T00:00:{at}+00:00",
        "recorded_at": 0.0,
        "data": {},
    }


RECORDED = [  # in recording order, which is not the events' time order
    event(3, "e3", "paid", "payments", "00.700", "e2"),
    event(1, "e1", "created", "orders", "00.000", None),
    event(2, "e2", "reserved", "inventory", "00.250", "e1"),
    event(4, "e4", "confirmed", "orders", "01.000", "e3"),
]


def test_steps_follow_the_events_time_with_hops_and_handlers() -> None:
    found = journey("c", RECORDED)
    assert [step["type"] for step in found["steps"]] == ["created", "reserved", "paid", "confirmed"]
    assert found["lanes"] == ["orders", "inventory", "payments"]
    assert [step["hop_ms"] for step in found["steps"]] == [None, 250.0, 450.0, 300.0]
    assert [step["offset_ms"] for step in found["steps"]] == [0.0, 250.0, 700.0, 1000.0]
    assert found["duration_ms"] == 1000.0
    assert found["steps"][0]["handled_by"] == [{"service": "inventory", "group": "inventory"}]
    assert found["steps"][3]["handled_by"] == []
    assert (found["steps"][3]["lane"], found["steps"][3]["cause_lane"]) == (0, 2)
    assert found["subject"] == "o-1"


def test_dead_letters_replays_and_the_saga_attach_to_their_steps() -> None:
    letters = [{"id": "d1", "group": "shipping", "event_id": "e4", "reason": "boom", "attempts": 3}]
    replays = [{"group": "shipping", "event_id": "e4", "action": "replayed", "at": 5.0}]
    saga = {"service": "orders", "saga": "order", "status": "confirmed"}
    found = journey("c", RECORDED, dead_letters=letters, replays=replays, sagas=[saga])
    last = found["steps"][3]
    assert [(x["group"], x["attempts"], x["reason"]) for x in last["dead_letters"]] == [("shipping", 3, "boom")]
    assert last["replays"][0]["action"] == "replayed"
    assert [entry["type"] for entry in found["sagas"][0]["history"]] == ["created", "paid", "confirmed"]
    assert [entry["role"] for entry in found["sagas"][0]["history"]] == ["published", "handled", "published"]


def test_a_missing_cause_starts_a_new_root_without_a_hop() -> None:
    found = journey("c", [event(1, "e9", "late", "legacy", "02.000", "never-recorded")])
    assert found["steps"][0]["hop_ms"] is None
    assert found["steps"][0]["cause"] is None


def test_saga_phases() -> None:
    assert phase("running", None, [], now=10) == "running"
    assert phase("running", 5.0, [], now=10) == "timed-out"
    assert phase("running", None, [{"type": "x"}], now=10) == "compensating"
    assert phase("timed-out", None, [], now=10) == "timed-out"
    assert phase("cancelled", None, [], now=10) == "compensating"
    assert phase("confirmed", None, [], now=10) == "ended"
