"""Plots of the shop at load: `bench/results/shop.png`, per configuration, settled orders/s (at
saturation and at the fixed rate) and CPU milliseconds per settled order split by process, for
this tree and, where their files are there, for the commits measured back to back with it
(`shop_<commit>.json`: 2ff6a47, before ADR 0032, and d95f4a6, before issue 12's work). Where a
run measured the whole machine (`machine_at_saturation`), the broker's and the database's CPU per
order is stacked on top of the services': they share the same cores.

    python bench/plot_shop.py [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

CONFIGS = ("embedded", "embedded-postgres", "rabbitmq-postgres")
COMMITS = ("2ff6a47", "d95f4a6")
"""Earlier commits measured back to back with this tree, newest first."""
PROCESSES = ("orders", "inventory", "payments", "shipping", "notifications", "load generator")
SERVERS = ("PostgreSQL", "RabbitMQ")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    runs = {"this tree": _load(args.results / "shop.json")}
    runs |= {commit: _load(args.results / f"shop_{commit}.json") for commit in COMMITS}
    runs = {label: data for label, data in runs.items() if data}
    configs = [c for c in CONFIGS if any("saturation" in data.get(c, {}) for data in runs.values())]
    if not configs:
        raise SystemExit(f"no shop figures in {args.results}")
    figure, (rates, cpu) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = list(runs)
    width = 0.8 / (2 * len(labels))
    for i, label in enumerate(labels):
        for j, (phase, hatch) in enumerate((("saturation", ""), ("fixed_rate", "//"))):
            offset = (2 * i + j) * width
            values = [runs[label].get(c, {}).get(phase, {}).get("orders_per_second", 0) for c in configs]
            bars = rates.bar(
                [k + offset for k in range(len(configs))], values, width, hatch=hatch, label=f"{label}, {phase}"
            )
            rates.bar_label(bars, fontsize=7)
    rates.set_xticks([k + 0.4 - width / 2 for k in range(len(configs))], configs)
    rates.set(title="settled orders/s", ylabel="orders/s")
    rates.legend(fontsize=7)
    columns = [(label, c) for c in configs for label in labels if "cpu_at_saturation" in runs[label].get(c, {})]
    bottoms = [0.0] * len(columns)
    for process in PROCESSES:
        values = [
            runs[label][c]["cpu_at_saturation"]["processes"].get(process, {}).get("cpu_ms_per_unit", 0.0)
            for label, c in columns
        ]
        cpu.bar(range(len(columns)), values, bottom=bottoms, label=process)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    for server in SERVERS:
        servers = [runs[label][c].get("machine_at_saturation", {}).get("servers", {}) for label, c in columns]
        values = [figures.get(server, {}).get("cpu_ms_per_unit", 0.0) for figures in servers]
        if any(values):
            cpu.bar(range(len(columns)), values, bottom=bottoms, label=f"{server} server", hatch="..")
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    cpu.set_xticks(range(len(columns)), [f"{c}\n{label}" for label, c in columns], fontsize=7)
    cpu.set(title="CPU per settled order at saturation", ylabel="ms")
    cpu.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.results / "shop.png", dpi=100)
    print(f"written to {args.results / 'shop.png'}")


if __name__ == "__main__":
    main()
