"""A soak of the embedded shop at a fixed rate: does any process or table grow without bound?

    python bench/soak.py                       # 10 minutes at 10 orders/s
    python bench/soak.py --minutes 3 --rate 8  # a shorter run on a busy machine

The five services and the dashboard run on the embedded broker and SQLite databases (so every
table can be counted from the files); orders are placed at `--rate`/s for `--minutes`. Every
`--every` seconds the run samples each process's resident memory (`/proc/<pid>/status`) and the
row counts of the tables that could grow: each service's inbox and outbox, the broker's messages
and deliveries, the dashboard's recorded events. The dashboard keeps events for `--dashboard-age`
seconds here (its default is 7 days), so that its pruning shows within the run.

Verdicts, from the second half of the run (the first half includes warm-up: imports, caches,
SQLite's page cache filling): a process is `flat` if its RSS grew by less than `--rss-slack` MiB
over that half; a table is `flat` if its count did not grow over it (outbox, broker rows: they
hold only what is in flight) and `growing` otherwise; `pruned` says a tenth of its rows went at
once at least once (the dashboard's retention), with the reason it is bounded where there is one (the inbox
keeps every id for its retention, 7 days by default, pruned every 10 minutes). `shop check`
runs at the end. Results go to `--out` (JSON) and `--plot` (PNG).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import proc_stats  # type: ignore[import-not-found]  # bench/ is the script's folder

from services.check import check
from services.load import run_load
from services.settings import SERVICES, Settings
from services.supervisor import Supervisor, read_ready_file

PROCESSES = (*SERVICES, "dashboard")
BOUNDED_BY = {
    "tidings_inbox": "kept for the inbox retention (7 days by default), then pruned every 10 minutes",
}


def tables(settings: Settings) -> dict[str, tuple[Path, str]]:
    """`<file>:<table>` -> (file, table) for every table the soak counts."""
    found = {}
    for name in SERVICES:
        for table in ("tidings_inbox", "tidings_outbox"):
            found[f"{name}.{table}"] = (settings.data_dir / f"{name}.db", table)
    for table in ("messages", "deliveries"):
        found[f"broker.{table}"] = (settings.data_dir / "broker.db", table)
    found["dashboard.events"] = (settings.data_dir / "dashboard.db", "tidings_dashboard_events")
    found["dashboard.tidings_inbox"] = (settings.data_dir / "dashboard.db", "tidings_inbox")
    return found


def count_rows(path: Path, table: str) -> int | None:
    """Rows of `table`, read through a read-only connection (it never takes the write lock)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as connection:
            return int(connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    except sqlite3.Error:
        return None


def sample(settings: Settings, counted: dict[str, tuple[Path, str]], started: float) -> dict[str, Any]:
    pids = {name: int(info["pid"]) for name in PROCESSES if (info := read_ready_file(settings, name))}
    return {
        "t_s": round(time.monotonic() - started, 1),
        "rss_mib": {name: proc_stats.rss_mib(pid) for name, pid in pids.items()},
        "rows": {label: count_rows(path, table) for label, (path, table) in counted.items()},
    }


def verdicts(samples: list[dict[str, Any]], rss_slack: float) -> dict[str, Any]:
    """Per process and per table: its figures over the second half and whether it stays bounded."""
    half = samples[len(samples) // 2 :]
    processes = {}
    for name in samples[-1]["rss_mib"]:
        series = [s["rss_mib"].get(name) for s in half if s["rss_mib"].get(name) is not None]
        if len(series) < 2:
            continue
        grew = round(series[-1] - series[0], 1)
        processes[name] = {
            "rss_mib_first": samples[0]["rss_mib"].get(name),
            "rss_mib_last": series[-1],
            "rss_mib_max": max(s["rss_mib"].get(name) or 0 for s in samples),
            "grew_in_second_half_mib": grew,
            "verdict": "flat" if grew < rss_slack else "growing",
        }
    rows = {}
    for label in samples[-1]["rows"]:
        series = [s["rows"].get(label) for s in samples if s["rows"].get(label) is not None]
        later = [s["rows"].get(label) for s in half if s["rows"].get(label) is not None]
        if len(later) < 2:
            continue
        peak, pruned = 0, False
        for value in series:  # a fall of a tenth from the highest count so far: something deleted rows
            pruned = pruned or value < 0.9 * peak
            peak = max(peak, value)
        flat = later[-1] - later[0] <= max(50, 0.05 * max(later))
        verdict = "flat" if flat else "growing"
        entry: dict[str, Any] = {
            "first": series[0],
            "last": series[-1],
            "max": max(series),
            "pruned": pruned,
            "verdict": verdict,
        }
        if verdict == "growing" and label.split(".", 1)[1] in BOUNDED_BY:
            entry["bounded_by"] = BOUNDED_BY[label.split(".", 1)[1]]
        rows[label] = entry
    return {"processes": processes, "tables": rows}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    times = [s["t_s"] / 60 for s in samples]
    figure, (memory, rows) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in result["verdicts"]["processes"]:
        memory.plot(times, [s["rss_mib"].get(name) for s in samples], label=name)
    memory.set(title="resident memory per process", xlabel="minutes", ylabel="MiB")
    memory.set_ylim(bottom=0)
    memory.legend(fontsize=8)
    for label in result["verdicts"]["tables"]:
        values = [s["rows"].get(label) for s in samples]
        if max(v or 0 for v in values) > 0:
            rows.plot(times, values, label=label)
    rows.set(title="rows per table", xlabel="minutes", ylabel="rows")
    rows.set_yscale("symlog")
    rows.legend(fontsize=7)
    figure.suptitle(f"embedded shop at {result['rate']:g} orders/s for {result['minutes']:g} minutes")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shop-soak-") as directory:
        settings = Settings(data_dir=Path(directory) / "data", api_port=0, dashboard_port=0)
        settings.data_dir.mkdir(parents=True)
        os.environ["TIDINGS_DASHBOARD_MAX_AGE"] = str(args.dashboard_age)
        os.environ["TIDINGS_DASHBOARD_PRUNE_INTERVAL"] = str(max(5.0, args.dashboard_age / 6))
        supervisor = Supervisor(settings, services=PROCESSES, say=lambda line: None, log_level="WARNING")
        counted = tables(settings)
        samples: list[dict[str, Any]] = []
        try:
            api = (await supervisor.start())["api"]
            started = time.monotonic()
            orders = int(args.rate * args.minutes * 60)
            load = asyncio.create_task(run_load(api, orders, args.rate, show_progress=False, settle_timeout=300))
            while not load.done():
                samples.append(await asyncio.to_thread(sample, settings, counted, started))
                print(f"  {samples[-1]['t_s']:>6.0f}s rss {samples[-1]['rss_mib']}", flush=True)
                await asyncio.wait({load}, timeout=args.every)
            report = await load
            samples.append(await asyncio.to_thread(sample, settings, counted, started))
            found, _ = await check(settings, wait=60, say=lambda line: None)
        finally:
            await supervisor.stop(grace=30)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "rate": args.rate,
        "minutes": args.minutes,
        "dashboard_max_age_s": args.dashboard_age,
        "load": {key: getattr(report, key) for key in ("placed", "settled", "unsettled", "orders_per_second")}
        | {"latency_ms": report.latency_ms},
        "invariants": "hold" if not found else f"{len(found)} violations, e.g. {found[:3]}",
        "verdicts": verdicts(samples, args.rss_slack),
        "samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10.0, help="orders/s, below saturation")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--dashboard-age", type=float, default=60.0, help="seconds the dashboard keeps an event")
    parser.add_argument("--rss-slack", type=float, default=8.0, help="MiB a process may grow in the second half")
    parser.add_argument("--out", type=Path, default=Path("bench/results/soak.json"))
    parser.add_argument("--plot", type=Path, default=Path("bench/results/soak.png"))
    args = parser.parse_args()
    result = asyncio.run(soak(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.plot)
    for kind, entries in result["verdicts"].items():
        for name, figures in entries.items():
            print(f"{kind:<10}{name:<32}{figures['verdict']:<9}{figures}")
    print(f"invariants {result['invariants']}; written to {args.out} and {args.plot}")
    return 0 if result["invariants"] == "hold" else 1


if __name__ == "__main__":
    sys.exit(main())
