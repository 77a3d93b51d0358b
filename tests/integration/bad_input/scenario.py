"""The bad-input scenario on one broker: a real `Service`, with a SQLite database (so the inbox
is in play), consumes hostile messages interleaved with good events; then what became of each.

Phase one writes every hostile kind of `hostile.KINDS` mixed with good events. Phase two,
once phase one is settled, writes the reused ids (see `test_bad_input`) mixed with more good
events: written later, so the good event that first used an id is certainly handled first.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.integration.bad_input.brokers import GROUP, Target
from tests.integration.bad_input.hostile import KINDS, PII, REUSED_ID, TAG, PaymentCaptured, Raw, good
from tidings.context import Context
from tidings.retry import RetryPolicy
from tidings.service import Service
from tidings.transport.base import DeadLetter

GOOD = 200
"""Good events in phase one; `REUSED` of them have their id reused in phase two."""
REUSED = 20
LATE_GOOD = 20
HANDOVER = RetryPolicy(max_attempts=2, base=0.05, factor=1.0, jitter=0.0)
"""Short, so that what only another member might know is dead-lettered within the test."""
RETRY = RetryPolicy(max_attempts=2, base=0.05, factor=1.0, jitter=0.0)
"""A hostile message must never be retried: a dead letter after two attempts shows it was."""
MAX_REASON = 1_000
"""A reason is for a person to read (and a RabbitMQ header): it never echoes a whole input."""
WITHIN = 45.0


@dataclass(frozen=True)
class Plan:
    first: list[Raw]
    second: list[Raw]

    @property
    def hostile(self) -> list[Raw]:
        return [message for message in (*self.first, *self.second) if message.kind not in ("good", REUSED_ID)]

    @property
    def goods(self) -> list[Raw]:
        return [message for message in (*self.first, *self.second) if message.kind == "good"]

    @property
    def reused(self) -> list[Raw]:
        return [message for message in self.second if message.kind == REUSED_ID]


def plan(seed: int) -> Plan:
    """Every kind's messages and the good events, shuffled together; the same seed, the same plan."""
    rng = random.Random(seed)
    hostile = [make(rng, f"{kind}-{n}") for kind, (make, count) in KINDS.items() for n in range(count)]
    goods = [good(rng, f"good-{n}") for n in range(GOOD)]
    first = [*hostile, *goods]
    rng.shuffle(first)
    reused = []
    for n, original in enumerate(rng.sample(goods, REUSED)):
        data = {**original.data, "amount_cents": int(str(original.data["amount_cents"])) + 1 + n}
        body = json.dumps(data, separators=(",", ":")).encode()
        reused.append(replace(original, kind=REUSED_ID, tag=f"{REUSED_ID}-{n}", body=body, expect="duplicate", data={}))
    second = [*reused, *(good(rng, f"good-late-{n}") for n in range(LATE_GOOD))]
    rng.shuffle(second)
    return Plan(first, second)


@dataclass
class Result:
    broker: str
    shared: bool
    """Whether members of a group share one stream of types (no `member_types` capability)."""
    stats: dict[str, int]
    letters: list[DeadLetter]
    received: dict[str, list[dict[str, Any]]]
    backlog: int | None
    settled: list[bool] = field(default_factory=list)


def _settled(stats: Counter[str]) -> int:
    return stats["handled"] + stats["duplicates"] + stats["dead_lettered"]


async def _wait(check: Any, within: float = WITHIN) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run(target: Target, tmp_path: Path, scenario: Plan) -> Result:
    received: dict[str, list[dict[str, Any]]] = defaultdict(list)
    service = Service(
        GROUP,
        broker=target.url,
        database=f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}",
        retry=RETRY,
        handover=HANDOVER,
    )

    @service.on(PaymentCaptured)
    async def capture(event: PaymentCaptured, ctx: Context) -> None:
        assert ctx.incoming is not None
        received[ctx.incoming.id].append(event.model_dump())

    async with service:
        settled = []
        total = 0
        for phase in (scenario.first, scenario.second):
            total += len(phase)
            await target.write(phase)

            async def done(total: int = total) -> bool:
                return _settled(service.stats) >= total

            settled.append(await _wait(done))
        letters = await service.transport.dead_letters(GROUP, limit=10_000)
        backlog: dict[str, int] = {}

        async def drained() -> bool:
            backlog.update(await service.transport.backlog())
            return backlog.get(GROUP) == 0

        await _wait(drained, 30.0)  # RabbitMQ's figures lag by its statistics interval (5 s)
        shared = not service.transport.capabilities.member_types
        return Result(target.name, shared, dict(service.stats), letters, dict(received), backlog.get(GROUP), settled)


def expected_attempts(message: Raw, shared: bool) -> int:
    if message.attempts == "handover" or (message.attempts == "handover-if-shared" and shared):
        return HANDOVER.max_attempts
    return 1


def verify(scenario: Plan, result: Result) -> dict[str, int]:
    """Every problem found, one line each (empty when all is well), and dead letters per kind."""
    problems: list[str] = []
    by_tag: dict[str | None, list[DeadLetter]] = defaultdict(list)
    for letter in result.letters:
        by_tag[letter.headers.get(TAG)].append(letter)
    counts: Counter[str] = Counter()
    for message in scenario.hostile:
        found = by_tag.pop(message.tag, [])
        if len(found) != 1:
            problems.append(f"{message.kind} {message.tag}: {len(found)} dead letters")
            continue
        (letter,) = found
        reason = letter.reason
        shown = f"{message.kind} {message.tag}: reason {reason[:120]!r}"
        if not reason.startswith(message.expect):
            problems.append(f"{shown} does not start with {message.expect!r}")
        elif message.names and message.names not in reason:
            problems.append(f"{shown} does not name {message.names}")
        elif PII in reason or len(reason) > MAX_REASON:
            problems.append(f"{shown} ({len(reason)} characters) quotes the input")
        elif letter.attempts != expected_attempts(message, result.shared):
            problems.append(f"{shown} after {letter.attempts} attempts")
        else:
            counts[message.kind] += 1
    for tag, letters in by_tag.items():
        problems.append(f"{len(letters)} dead letter(s) of {tag!r}, which is no hostile message")
    problems.extend(_handled(scenario, result.received))
    counts[REUSED_ID] = result.stats.get("duplicates", 0)
    if counts[REUSED_ID] != len(scenario.reused):
        problems.append(f"{counts[REUSED_ID]} duplicates acked, {len(scenario.reused)} ids were reused")
    if result.backlog != 0:
        problems.append(f"the group's backlog is {result.backlog}, not 0")
    if not all(result.settled):
        problems.append(f"not every message was settled within {WITHIN} s: {result.stats}")
    assert not problems, f"{result.broker}: {len(problems)} problem(s):\n" + _summary(problems)
    return dict(counts)


def _summary(problems: list[str]) -> str:
    """Problems grouped by their first word (the kind), three examples of each."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for problem in sorted(problems):
        grouped[problem.split(" ", 1)[0]].append(problem)
    return "\n".join(
        f"{len(found):4} x {line}" if n == 0 else f"       {line}"
        for found in grouped.values()
        for n, line in enumerate(found[:3])
    )


def _handled(scenario: Plan, received: dict[str, list[dict[str, Any]]]) -> Sequence[str]:
    """Every good event handled exactly once with its own data; nothing else handled at all."""
    problems = []
    goods = {message.attributes["id"]: message for message in scenario.goods}
    for event_id, message in goods.items():
        if received.get(event_id) != [message.data]:
            problems.append(f"good event {message.tag} was handled as {received.get(event_id)}")
    tags = {message.attributes.get("id"): message.tag for message in (*scenario.first, *scenario.second)}
    for event_id, events in received.items():
        if event_id not in goods:
            problems.append(f"handler ran on invalid data: {tags.get(event_id, event_id)} {len(events)} time(s)")
    return problems
