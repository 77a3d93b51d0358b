"""`python -m services.chaos [--seed N] [--runs rabbitmq-postgres,sqlite] [--out FILE]`.

Runs each kind of chaos run in turn (`services.chaos.run`), prints each fault as it lands and
the report at the end, writes the report as JSON (`data/chaos/report.json`), and exits 0 only if
no run found a violation (1 otherwise, 2 if a run could not be set up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from services.chaos.run import RunConfig, chaos_run
from services.settings import DEFAULT_EVENT_LOOP, EVENT_LOOPS

RUNS = {
    # ~4 minutes on a 2-core machine: 16 kills, the broker restart, cuts and slow-downs of the
    # broker, database and API connections, then settling. 4 orders/s: at 8 the shared machine
    # could not keep up through the proxies even between faults, and latency measured queueing
    "rabbitmq-postgres": RunConfig("rabbitmq-postgres", rate=4.0, extra_kills=1, pause=(1.0, 3.0)),
    # ~2 minutes: 15 kills with shorter pauses, the API connections cut and slowed; settling can
    # take a delivery lease (30 s) after the last kill
    "sqlite": RunConfig("sqlite", rate=4.0, extra_kills=0, pause=(0.5, 1.5), network_every=(2.0, 5.0)),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, help="seed of the fault plan and the order mix [random, printed]")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of {', '.join(RUNS)} [both]")
    parser.add_argument("--data-dir", type=Path, default=Path("data/chaos"), help="where the runs' shops live")
    parser.add_argument("--out", type=Path, default=Path("data/chaos/report.json"), help="the JSON report")
    parser.add_argument("--kills-per-service", type=int, default=3, help="SIGKILLs of each service per run [3]")
    parser.add_argument("--rate", type=float, help="orders per second of the load, in every run [per run]")
    parser.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default=DEFAULT_EVENT_LOOP,
        help=f"the services' loop [{DEFAULT_EVENT_LOOP}]",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    names = [name.strip() for name in args.runs.split(",") if name.strip()]
    unknown = sorted(set(names) - RUNS.keys())
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; there are {', '.join(RUNS)}")
    say(f"seed {seed} (reproduce the fault plan with --seed {seed})")
    began = time.monotonic()
    reports: list[dict[str, Any]] = []
    status = 0
    for name in names:
        try:
            config = replace(RUNS[name], kills_per_service=args.kills_per_service, event_loop=args.event_loop)
            config = replace(config, rate=args.rate) if args.rate else config
            report = asyncio.run(chaos_run(config, seed, args.data_dir, say))
        except Exception as error:  # a run that could not be carried out is a failure, said plainly
            say(f"{name}: the run failed: {type(error).__name__}: {error}")
            report = {"run": name, "seed": seed, "error": f"{type(error).__name__}: {error}", "violations": []}
            status = 2
        reports.append(report)
        summarise(report)
        if report["violations"]:
            status = max(status, 1)
    document = {"seed": seed, "duration_s": round(time.monotonic() - began, 1), "runs": reports}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))
    say(f"report written to {args.out}; {document['duration_s']}s in all; exit {status}")
    return status


def summarise(report: dict[str, Any]) -> None:
    if "error" in report:
        return
    orders, dupes = report["orders"], report["duplicates_absorbed"]
    say(
        f"{report['run']}: {report['duration_s']}s; orders placed {orders['placed']}, accepted {orders['accepted']}, "
        f"found {orders['found']}; faults {report['faults']}; duplicates absorbed {dupes['total']}; "
        f"deadline-cancelled {report['deadline_cancelled']['count']}; after the last fault, orders settled in "
        f"{report['time_to_settle_s']['orders']}s, everything in {report['time_to_settle_s']['everything']}s; "
        f"{len(report['violations'])} violation(s)"
    )
    for line in report["violations"]:
        say(f"  VIOLATION {line}")


def say(line: str) -> None:
    print(f"[chaos] {line}", flush=True)
