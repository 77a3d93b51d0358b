"""A business transaction as a journey: steps in time order, each in the lane of the service that
published it, with the time per hop and end to end, who handled it, and what failed on the way.

Pure logic over what the recorder stored, the broker's dead letters, the dashboard's replay log
and the saga rows (ADR 0022): no I/O here, so it is tested without a broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

Json = dict[str, Any]


def _seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def _lane(source: str) -> str:
    """The lane of an event's `source`: the service name inside the default `urn:tidings:<service>`
    (a service consumes as the group of its name), any other URI as it is."""
    return source.removeprefix("urn:tidings:")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def journey(
    correlation: str,
    recorded: Sequence[Mapping[str, Any]],
    *,
    dead_letters: Iterable[Mapping[str, Any]] = (),
    replays: Iterable[Mapping[str, Any]] = (),
    sagas: Iterable[Mapping[str, Any]] = (),
) -> Json:
    """The journey of `correlation` from its recorded events (any order; sorted by their time).

    A step's hop is its time minus its cause's (delivery, queueing and the handler together);
    its handlers are the services whose events it caused (a service consumes as the group of its
    name); dead letters and replays are matched by event id.
    """
    ordered = sorted(recorded, key=lambda event: (_seconds(event["time"]) or event["recorded_at"], event["seq"]))
    index_of = {event["id"]: index for index, event in enumerate(ordered)}
    start = _seconds(ordered[0]["time"]) if ordered else None
    lanes: list[str] = []
    handlers: dict[str, list[str]] = {}
    for event in ordered:
        lane = _lane(event["source"])
        if lane not in lanes:
            lanes.append(lane)
        cause = event["causation"]
        if cause in index_of and cause != event["id"]:
            names = handlers.setdefault(cause, [])
            if lane not in names:
                names.append(lane)
    failed: dict[str, list[Json]] = {}
    for letter in dead_letters:
        failed.setdefault(letter["event_id"], []).append(
            {key: letter.get(key) for key in ("id", "group", "reason", "attempts", "dead_lettered_at")}
        )
    done: dict[str, list[Json]] = {}
    for replay in replays:
        done.setdefault(replay["event_id"], []).append(dict(replay))
    steps: list[Json] = []
    for index, event in enumerate(ordered):
        at = _seconds(event["time"])
        cause_index = index_of.get(event["causation"]) if event["causation"] != event["id"] else None
        cause_at = _seconds(ordered[cause_index]["time"]) if cause_index is not None else None
        steps.append(
            {
                "index": index,
                "id": event["id"],
                "type": event["type"],
                "source": event["source"],
                "service": _lane(event["source"]),
                "lane": lanes.index(_lane(event["source"])),
                "subject": event["subject"],
                "time": event["time"],
                "offset_ms": _ms(at - start) if at is not None and start is not None else None,
                "hop_ms": _ms(at - cause_at) if at is not None and cause_at is not None else None,
                "cause": cause_index,
                "cause_lane": lanes.index(_lane(ordered[cause_index]["source"])) if cause_index is not None else None,
                "handled_by": [{"service": name, "group": name} for name in handlers.get(event["id"], [])],
                "dead_letters": failed.get(event["id"], []),
                "replays": done.get(event["id"], []),
                "data": event["data"],
            }
        )
    times = [_seconds(event["time"]) for event in ordered]
    known = [moment for moment in times if moment is not None]
    return {
        "correlation": correlation,
        "subject": next((event["subject"] for event in ordered if event["subject"]), None),
        "started": ordered[0]["time"] if ordered else None,
        "ended": ordered[-1]["time"] if ordered else None,
        "duration_ms": _ms(max(known) - min(known)) if known else None,
        "lanes": lanes,
        "steps": steps,
        "sagas": [_saga(saga, steps) for saga in sagas],
    }


def _saga(saga: Mapping[str, Any], steps: Sequence[Json]) -> Json:
    """A saga row with its history: the steps its service published or handled, in time order."""
    service = saga["service"]
    history = []
    for step in steps:
        if step["service"] == service:
            history.append({"index": step["index"], "time": step["time"], "type": step["type"], "role": "published"})
        elif any(handler["service"] == service for handler in step["handled_by"]):
            history.append({"index": step["index"], "time": step["time"], "type": step["type"], "role": "handled"})
    return {**saga, "history": history}
