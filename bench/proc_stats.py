"""CPU time and resident memory of processes, read from `/proc` (Linux), for per-service breakdowns.

`Sample.take(pids)` reads each process's user+system CPU seconds (`/proc/<pid>/stat`, fields 14
and 15) and its resident set (`VmRSS` in `/proc/<pid>/status`); `cpu_breakdown(before, after,
units)` turns two samples into CPU seconds, share of the total and milliseconds per unit of work
(an order, an event). A process that exited between the samples is left out rather than guessed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far; None if it is gone (or this is not Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime and stime: fields 14 and 15 of the line


def rss_mib(pid: int) -> float | None:
    """Resident memory of `pid` in MiB; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Sample:
    """CPU seconds and RSS of named processes at one moment (monotonic `at`)."""

    at: float
    cpu: dict[str, float]
    rss: dict[str, float]

    @classmethod
    def take(cls, pids: Mapping[str, int]) -> Sample:
        cpu, rss = {}, {}
        for name, pid in pids.items():
            seconds, resident = cpu_seconds(pid), rss_mib(pid)
            if seconds is not None:
                cpu[name] = seconds
            if resident is not None:
                rss[name] = resident
        return cls(time.monotonic(), cpu, rss)


def cpu_breakdown(before: Sample, after: Sample, units: int) -> dict[str, Any]:
    """Per process: CPU seconds between the samples, its share, ms per unit and its cores' worth
    (CPU seconds per wall second); plus the totals and the RSS at the end."""
    wall = max(after.at - before.at, 1e-9)
    used = {name: after.cpu[name] - before.cpu[name] for name in after.cpu if name in before.cpu}
    total = sum(used.values()) or 1e-9
    per = {
        name: {
            "cpu_s": round(seconds, 2),
            "share": round(seconds / total, 3),
            "cpu_ms_per_unit": round(1000 * seconds / max(units, 1), 2),
            "cores": round(seconds / wall, 2),
            "rss_mib": after.rss.get(name),
        }
        for name, seconds in sorted(used.items(), key=lambda item: -item[1])
    }
    return {
        "wall_s": round(wall, 2),
        "units": units,
        "total_cpu_s": round(total, 2),
        "total_cpu_ms_per_unit": round(1000 * total / max(units, 1), 2),
        "cores": round(total / wall, 2),
        "processes": per,
    }


def describe(breakdown: Mapping[str, Any]) -> str:
    """One line: `orders 12.3 ms (41%), inventory ...; total 30.1 ms per order`."""
    parts = [
        f"{name} {figures['cpu_ms_per_unit']} ms ({100 * figures['share']:.0f}%)"
        for name, figures in breakdown["processes"].items()
    ]
    return (
        ", ".join(parts) + f"; total {breakdown['total_cpu_ms_per_unit']} ms CPU per unit, {breakdown['cores']} cores"
    )
