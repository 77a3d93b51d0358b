"""Plots of the reliable-path figures: `bench/results/reliable_path.png` (handled events/s of the
raw-driver floor and of Tidings' runs, per database) and
`bench/results/reliable_path_latency.png` (relay commit → broker confirm, p50 and p99).

    python bench/plot.py [--results bench/results]

Reads `reliable_path.json` (this tree) and, if present, `reliable_path_d95f4a6.json` (the same
bench run on a worktree of commit d95f4a6, before group commit, in the same sitting).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

VARIANTS = (
    ("", "Tidings\nSQLite broker"),
    ("_memory", "Tidings\nno broker I/O"),
    ("_memory_core_c64", "Tidings, Core,\n64 at a time"),
    ("_memory_prepared_c64_uvloop", "Tidings, Prepared,\n64, uvloop"),
)
"""The Tidings runs drawn beside the floor: (suffix of the entry's key, label). The default run
(embedded SQLite broker, ORM handler, 16 at a time); the in-memory broker (what the floor does:
database work only); that with the handler on `ctx.connection` and 64 deliveries at a time; and
that with the handler's statement `Prepared` (ADR 0036), on uvloop."""


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    after = _load(args.results / "reliable_path.json")
    before = _load(args.results / "reliable_path_d95f4a6.json")
    databases = [name for name in ("sqlite", "postgres") if name in after]
    if not databases:
        raise SystemExit(f"no figures in {args.results / 'reliable_path.json'}")

    figure, axes = plt.subplots(1, len(databases), figsize=(7 * len(databases), 4.5), squeeze=False)
    for axis, name in zip(axes[0], databases, strict=True):
        bars: dict[str, float] = {}
        floors = after[name].get("floor", [])
        if floors:
            bars["raw floor\n1 event/tx"] = sum(f["one_per_transaction"]["events_per_s"] for f in floors) / len(floors)
            bars["raw floor\n10 events/tx"] = sum(f["ten_per_transaction"]["events_per_s"] for f in floors) / len(
                floors
            )
        if name in before:
            bars["Tidings\nd95f4a6"] = before[name]["saturated"]["handled_events_per_s"]
        for suffix, label in VARIANTS:
            if name + suffix in after:
                bars[label] = after[name + suffix]["saturated"]["handled_events_per_s"]
        colours = ["#999999" if "floor" in label else "#d08770" if "d95f4a6" in label else "#5e81ac" for label in bars]
        axis.bar(list(bars), list(bars.values()), color=colours)
        axis.set_title(f"{name}: handled events/s (same run)")
        for index, value in enumerate(bars.values()):
            axis.annotate(f"{value:,.0f}", (index, value), ha="center", va="bottom")
    figure.tight_layout()
    figure.savefig(args.results / "reliable_path.png", dpi=100)

    figure, axis = plt.subplots(figsize=(6, 4))
    labels, p50, p99 = [], [], []
    for name in databases:
        for tag, data in (("d95f4a6", before.get(name)), ("group commit", after[name])):
            if data:
                labels.append(f"{name}\n{tag}")
                p50.append(data["paced"]["commit_to_publish_ms"]["p50"])
                p99.append(data["paced"]["commit_to_publish_ms"]["p99"])
    positions = range(len(labels))
    axis.bar([p - 0.2 for p in positions], p50, width=0.4, label="p50")
    axis.bar([p + 0.2 for p in positions], p99, width=0.4, label="p99")
    axis.set_xticks(list(positions), labels)
    axis.set_ylabel("ms")
    axis.set_title("relay: commit → broker confirm at half load")
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.results / "reliable_path_latency.png", dpi=100)
    print(f"written {args.results / 'reliable_path.png'} and {args.results / 'reliable_path_latency.png'}")


if __name__ == "__main__":
    main()
