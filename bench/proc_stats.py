"""CPU time and resident memory of processes, read from `/proc` (Linux), for per-service breakdowns.

`Sample.take(pids)` reads each process's user+system CPU seconds (`/proc/<pid>/stat`, fields 14
and 15) and its resident set (`VmRSS` in `/proc/<pid>/status`); `cpu_breakdown(before, after,
units)` turns two samples into CPU seconds, share of the total and milliseconds per unit of work
(an order, an event). A process that exited between the samples is left out rather than guessed.
`Machine.take()` and `machine_breakdown` do the same for the whole machine and its servers.
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


# Broker and database servers by their processes' command names, for the machine-wide picture:
# on a 2-core machine they compete with the services for the same cores.
SERVERS = {"postgres": "PostgreSQL", "beam.smp": "RabbitMQ", "java": "Kafka (java)"}


@dataclass(frozen=True)
class Machine:
    """The whole machine at one moment: busy and total CPU ticks (`/proc/stat`), and the CPU
    seconds of each server's processes by pid (a server process that started later counts from
    zero; one that exited in between is lost, so a server's figure is a lower bound)."""

    at: float
    busy_ticks: int
    total_ticks: int
    servers: dict[str, dict[int, float]]

    @classmethod
    def take(cls) -> Machine:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle and iowait
        servers: dict[str, dict[int, float]] = {label: {} for label in SERVERS.values()}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/comm", encoding="utf-8") as comm:
                    label = SERVERS.get(comm.read().strip())
            except OSError:
                continue
            if label is not None and (seconds := cpu_seconds(int(entry))) is not None:
                servers[label][int(entry)] = seconds
        return cls(time.monotonic(), sum(ticks) - idle, sum(ticks), servers)


def machine_breakdown(before: Machine, after: Machine, units: int) -> dict[str, Any]:
    """Cores busy on the whole machine between the samples (of `os.cpu_count()`), and each running
    server's CPU: milliseconds per unit and cores' worth."""
    wall = max(after.at - before.at, 1e-9)
    cpus = os.cpu_count() or 1
    busy = (after.busy_ticks - before.busy_ticks) / max(after.total_ticks - before.total_ticks, 1)
    servers = {}
    for label, pids in after.servers.items():
        seconds = sum(cpu - before.servers[label].get(pid, 0.0) for pid, cpu in pids.items())
        if pids:
            servers[label] = {
                "cpu_ms_per_unit": round(1000 * seconds / max(units, 1), 2),
                "cores": round(seconds / wall, 2),
            }
    return {"cpus": cpus, "busy_cores": round(busy * cpus, 2), "wall_s": round(wall, 2), "servers": servers}


def describe_machine(breakdown: Mapping[str, Any]) -> str:
    """One line: `1.97 of 2 cores busy; PostgreSQL 3.4 ms (0.31 cores), RabbitMQ ...`."""
    servers = ", ".join(
        f"{label} {figures['cpu_ms_per_unit']} ms ({figures['cores']} cores)"
        for label, figures in breakdown["servers"].items()
    )
    return f"{breakdown['busy_cores']} of {breakdown['cpus']} cores busy" + (f"; servers: {servers}" if servers else "")
