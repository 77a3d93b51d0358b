"""The `tidings` commands for people at a terminal, through the real console script: declare a
group, publish a validated event, read backlog and dead letters as JSON, tail recorded events and
trace a transaction with hop timings; bad input is one line and exit 2."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import insert

from tests.conformance.events import PING
from tidings.dashboard import recorder
from tidings.store import Store

ROOT = Path(__file__).resolve().parents[2]
TIDINGS = str(Path(sys.executable).with_name("tidings"))
EVENTS = ("--events", "tests.conformance.events")


def tidings(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TIDINGS, *argv], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_declare_then_publish_reaches_the_group_and_bad_data_is_one_line(tmp_path: Path) -> None:
    broker = f"sqlite:///{tmp_path}/broker.db"
    declared = tidings("declare", PING, "--group", "audit", "--broker", broker, "--json")
    assert declared.returncode == 0, declared.stderr
    assert json.loads(declared.stdout) == [{"group": "audit", "types": PING, "backlog": 0}]

    sent = tidings("publish", PING, "--data", '{"n": 7, "key": "k-7"}', *EVENTS, "--broker", broker, "--json")
    assert sent.returncode == 0, sent.stderr
    [row] = json.loads(sent.stdout)
    assert (row["type"], row["subject"]) == (PING, "k-7")

    backlog = tidings("backlog", "--broker", broker, "--json")
    assert json.loads(backlog.stdout) == [{"group": "audit", "backlog": 1}]  # kept for the declared group
    letters = tidings("dead-letters", "list", "--group", "audit", "--broker", broker, "--json")
    assert json.loads(letters.stdout) == []

    wrong = tidings("publish", PING, "--data", '{"n": "seven"}', "--events", "tests.conformance.events",
                    "--broker", broker)  # fmt: skip
    assert wrong.returncode == 2
    assert wrong.stderr.strip().startswith(
        f"tidings: --data does not match '{PING}': n: Input should be a valid integer"
    )
    unknown = tidings("publish", "no.such", "--data", "{}", "--events", "tests.conformance.events", "--broker", broker)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("tidings: no event type 'no.such' in tests.conformance.events; known:")


def test_trace_and_tail_read_what_the_recorder_stored(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/dashboard.db"
    asyncio.run(_record(database))
    traced = tidings("trace", "order-1", "--database", database)
    assert traced.returncode == 0, traced.stderr
    lines = traced.stdout.splitlines()
    assert lines[0].startswith("corr-1  3 events, 900 ms end to end")
    assert "shop.order.created  from orders" in lines[1]
    assert "shop.stock.reserved  from inventory  +250 ms" in traced.stdout
    assert "shop.payment.completed  from payments  +650 ms" in traced.stdout

    as_json = json.loads(tidings("trace", "e-2", "--database", database, "--json").stdout)
    [root] = as_json["roots"]
    assert [child["hop_ms"] for child in root["children"]] == [250.0]
    assert as_json["end_to_end_ms"] == 900.0

    tail = json.loads(tidings("events", "tail", "--database", database, "--limit", "2", "--json").stdout)
    assert [row["type"] for row in tail] == ["shop.stock.reserved", "shop.payment.completed"]
    missing = tidings("trace", "nothing-like-it", "--database", database)
    assert missing.returncode == 2
    assert (
        missing.stderr.strip()
        == "tidings: nothing recorded for 'nothing-like-it' (a correlation id, event id or subject)"
    )


async def _record(database: str) -> None:
    store = await Store.open(database, metadata=recorder.metadata)
    now = time.time()
    rows = [
        ("e-1", "shop.order.created", "orders", None, "2026-12-01T10:00:00.000+00:00"),
        ("e-2", "shop.stock.reserved", "inventory", "e-1", "2026-12-01T10:00:00.250+00:00"),
        ("e-3", "shop.payment.completed", "payments", "e-2", "2026-12-01T10:00:00.900+00:00"),
    ]
    async with store.session() as session, session.begin():
        for event_id, type_, source, causation, stamp in rows:
            await session.execute(
                insert(recorder.events).values(
                    event_id=event_id,
                    type=type_,
                    version=1,
                    source=source,
                    subject="order-1",
                    correlation="corr-1",
                    causation=causation,
                    time=stamp,
                    recorded_at=now,
                    data="{}",
                )
            )
    await store.close()
