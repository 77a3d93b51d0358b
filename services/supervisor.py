"""`shop up`: run the five services as child processes, restart crashed ones, stop them cleanly.

Each child is `python -m services.<name>`, configured through `SHOP_*` variables, with its
output appended to `<data_dir>/logs/<name>.log`. A child is *ready* when it has written
`<data_dir>/run/<name>.json` with its pid: by then its database is migrated and seeded and its
consumer group is declared, so no event published later can miss it. The API is announced
only once every service is ready.

`replicas` runs more than one process of a service (`shop up --replicas payments=2`): replica 1
is `<name>`, replica n is `<name>-<n>` (its log, its ready file). Replicas are competing consumers
of the service's group and share its database, so the service's inbox, relay lease and saga
locks make them safe together; an orders replica after the first serves the API on a free port
(reported in its ready file), the load goes to the first.

A child that exits while the shop is running is restarted after a backoff that doubles with
each quick crash (0.5 s up to 30 s) and resets once a child has lived for a minute. On stop,
every child gets SIGTERM (it drains and exits 0), and those still alive after `grace` seconds
get SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from services.kit.service import REPLICA, SUPERVISOR_PID, instance_name
from services.settings import SERVICES, Settings
from tidings.errors import ConfigurationError

log = logging.getLogger("services.supervisor")

STABLE_AFTER = 60.0
MAX_BACKOFF = 30.0


@dataclass(eq=False)
class Child:
    name: str
    """The instance: the service's name for replica 1, `<service>-<n>` for replica n."""
    service: str = ""
    replica: int = 1
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    quick_crashes: int = 0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Starts, watches and stops the shop's services; `say` receives one line per lifecycle event."""

    def __init__(
        self,
        settings: Settings,
        *,
        services: Sequence[str] = SERVICES,
        replicas: Mapping[str, int] | None = None,
        log_level: str = "INFO",
        say: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        counts = dict(replicas or {})
        unknown = sorted(set(counts) - set(services))
        if unknown or any(n < 1 for n in counts.values()):
            raise ConfigurationError(f"--replicas wants SERVICE=N (N >= 1) for services that run, got {counts}")
        self.children = {
            instance_name(name, n): Child(instance_name(name, n), name, n)
            for name in services
            for n in range(1, counts.get(name, 1) + 1)
        }
        self.log_level = log_level
        self.say = say
        self._stopping = False

    async def start(self, *, ready_within: float = 60.0) -> dict[str, Any]:
        """Start every service and wait until all are ready; returns the orders ready info."""
        for directory in (self.settings.data_dir, self.settings.run_dir, self.settings.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if "orders" in self.children:
            _check_port(self.settings.api_host, self.settings.api_port)
        for child in self.children.values():
            await self._spawn(child)
            child.watcher = asyncio.create_task(self._watch(child), name=f"watch-{child.name}")
        await self.wait_ready(within=ready_within)
        return self.ready_info("orders") if "orders" in self.children else {}

    async def wait_ready(self, *, within: float = 60.0) -> None:
        """Wait until every running child has written its ready file."""
        deadline = time.monotonic() + within
        waiting = set(self.children)
        while waiting:
            waiting = {name for name in waiting if not self._is_ready(self.children[name])}
            if not waiting:
                return
            if time.monotonic() > deadline:
                logs = ", ".join(str(self.settings.log_dir / f"{name}.log") for name in sorted(waiting))
                raise TimeoutError(f"not ready after {within:g}s: {', '.join(sorted(waiting))} (see {logs})")
            await asyncio.sleep(0.1)

    def ready_info(self, name: str) -> dict[str, Any]:
        return read_ready_file(self.settings, name) or {}

    def pid(self, name: str) -> int | None:
        process = self.children[name].process
        return None if process is None or process.returncode is not None else process.pid

    async def stop(self, *, grace: float = 30.0) -> None:
        """SIGTERM every child, wait up to `grace` seconds, SIGKILL the rest."""
        self._stopping = True
        for child in self.children.values():
            if child.watcher is not None:
                child.watcher.cancel()
        running = [c.process for c in self.children.values() if c.process and c.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(process.wait()) for process in running]
        if waits:
            _, late = await asyncio.wait(waits, timeout=grace)
            for child in self.children.values():
                straggler = child.process
                if straggler is not None and straggler.returncode is None:
                    self.say(f"{child.name} did not stop within {grace:g}s; killing it")
                    with contextlib.suppress(ProcessLookupError):
                        straggler.kill()
            if late:
                await asyncio.wait(late)
        for child in self.children.values():
            if child.process is not None and child.process.returncode not in (0, None, -signal.SIGTERM):
                self.say(f"{child.name} exited with status {child.process.returncode}")
        self.say("all services stopped")

    async def _spawn(self, child: Child) -> None:
        (self.settings.run_dir / f"{child.name}.json").unlink(missing_ok=True)
        env = {**os.environ, **self.settings.to_env(), SUPERVISOR_PID: str(os.getpid())}
        env["SHOP_LOG_LEVEL"] = self.log_level
        env[REPLICA] = str(child.replica)
        if child.replica > 1 and child.service == "orders":
            env["SHOP_API_PORT"] = "0"
        with _log_file(self.settings.log_dir / f"{child.name}.log") as output:
            child.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                f"services.{child.service or child.name}",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                env=env,
                start_new_session=True,  # Ctrl-C reaches the supervisor only, which stops children in order
            )
        child.started_at = time.monotonic()
        self.say(f"started {child.name} (pid {child.process.pid})")

    async def _watch(self, child: Child) -> None:
        while not self._stopping:
            assert child.process is not None
            status = await child.process.wait()
            if self._stopping:
                return
            lived = time.monotonic() - child.started_at
            child.quick_crashes = 0 if lived > STABLE_AFTER else child.quick_crashes + 1
            backoff = min(MAX_BACKOFF, 0.5 * 2 ** max(0, child.quick_crashes - 1))
            self.say(f"{child.name} exited with status {status} after {lived:.1f}s; restarting in {backoff:g}s")
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            child.restarts += 1
            await self._spawn(child)

    def _is_ready(self, child: Child) -> bool:
        info = read_ready_file(self.settings, child.name)
        return info is not None and child.process is not None and info.get("pid") == child.process.pid


def _check_port(host: str, port: int) -> None:
    """Fail at once, and say why, if the API port is taken (the orders service would crash-loop)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigurationError(f"the API address {host}:{port} is not free ({error}); use --api-port") from None


def _log_file(path: Path) -> BinaryIO:
    """The child's log, appended to across restarts (the child inherits the descriptor)."""
    return path.open("ab")


def read_ready_file(settings: Settings, name: str) -> dict[str, Any] | None:
    """What a running service wrote about itself (pid, and the API address for orders)."""
    try:
        info: dict[str, Any] = json.loads((settings.run_dir / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    return info


async def up(
    settings: Settings,
    *,
    services: Sequence[str] = SERVICES,
    replicas: Mapping[str, int] | None = None,
    log_level: str = "INFO",
) -> int:
    """`shop up`: start the services, print where the API is, run until Ctrl-C or SIGTERM."""
    supervisor = Supervisor(settings, services=services, replicas=replicas, log_level=log_level, say=_say)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        info = await supervisor.start()
        where = f"API {info['api']} (OpenAPI docs {info['api']}/docs)" if "api" in info else "no API (orders not run)"
        if "dashboard" in supervisor.children:
            where += f", dashboard {supervisor.ready_info('dashboard').get('dashboard')}"
        _say(f"shop is up: {where}; logs in {settings.log_dir}; Ctrl-C stops")
        metrics = {name: supervisor.ready_info(name).get("metrics") for name in supervisor.children}
        if any(metrics.values()):
            _say("metrics: " + ", ".join(f"{name} {url}/metrics" for name, url in metrics.items() if url))
        await stop.wait()
    finally:
        _say("stopping")
        await supervisor.stop()
    return 0


def _say(line: str) -> None:
    print(f"[shop] {line}", flush=True)
