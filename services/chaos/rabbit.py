"""A private RabbitMQ node for the chaos run, so that restarting "the broker" never touches the
RabbitMQ other people and test runs use (127.0.0.1:5672, node rabbit@localhost).

The node has its own name, ports, data and logs (`tidings-chaos@localhost`, AMQP 5673, Erlang
distribution 25673, management API 15673, all on 127.0.0.1; files under `base`), started with
the installed `rabbitmq-server -detached` (Debian's wrapper switches to the `rabbitmq` user, as
`scripts/services.sh` relies on) and stopped with `rabbitmqctl -n <node> shutdown`. The
management plugin is on because `Transport.backlog()` reads each group's backlog from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tidings.errors import ConfigurationError

START_WITHIN = 90.0


@dataclass
class PrivateRabbit:
    base: Path = Path("/tmp/tidings-chaos-rabbitmq")
    node: str = "tidings-chaos@localhost"
    port: int = 5673
    dist_port: int = 25673
    management_port: int = 15673

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def broker_url(self, port: int | None = None) -> str:
        """The Tidings URL of the node, through `port` (a proxy) if given; backlog is read directly."""
        return f"amqp://guest:guest@127.0.0.1:{port or self.port}/?management_url={self.management_url}"

    async def start(self, *, fresh: bool) -> float:
        """Start the node (`fresh`: stop a stale one of ours and wipe its data first); returns seconds taken."""
        began = time.monotonic()
        server = shutil.which("rabbitmq-server") or shutil.which(
            "rabbitmq-server", path="/usr/sbin:/usr/lib/rabbitmq/bin"
        )
        if server is None:
            raise ConfigurationError("rabbitmq-server is not installed: run `scripts/services.sh up rabbitmq` once")
        if fresh:
            await self.stop()
            shutil.rmtree(self.base, ignore_errors=True)
            self._write_config()
        for port in (self.port, self.dist_port, self.management_port):
            if _in_use(port):
                raise ConfigurationError(f"port {port} is taken: the private RabbitMQ node needs it (--rabbit-port)")
        await _run(server, "-detached", env=self._env())
        await _run("rabbitmqctl", "-n", self.node, "-q", "wait", "--timeout", str(int(START_WITHIN)), str(self.pidfile))
        async with httpx.AsyncClient(auth=("guest", "guest"), timeout=5) as client:
            while True:  # the management API answers a little after the broker app
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.management_url}/api/overview")).status_code == 200:
                        break
                if time.monotonic() - began > START_WITHIN:
                    raise TimeoutError(f"RabbitMQ node {self.node}: no management API (logs in {self.base / 'log'})")
                await asyncio.sleep(0.2)
        return time.monotonic() - began

    async def stop(self) -> None:
        """Shut the node down if it runs (waits until its process is gone)."""
        if not self.pidfile.exists():
            return
        try:
            await _run("rabbitmqctl", "-n", self.node, "-q", "shutdown", "--timeout", "60")
        except RuntimeError:  # not answering: make sure it is gone
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(self.pidfile.read_text().strip()), signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)

    async def restart(self) -> float:
        """Stop the server process and start it again with its data; returns seconds it was down."""
        began = time.monotonic()
        await self.stop()
        await self.start(fresh=False)
        return time.monotonic() - began

    @property
    def pidfile(self) -> Path:
        return self.base / "node.pid"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.pidfile),
        }

    def _write_config(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            "loopback_users.guest = true\ndisk_free_limit.absolute = 200MB\n"
            "collect_statistics_interval = 1000\n"  # backlog figures at most a second old
        )
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        with contextlib.suppress(KeyError):  # as root, the server runs as rabbitmq: give it the files
            owner = pwd.getpwnam("rabbitmq")
            if os.geteuid() == 0:
                for path in [self.base, *self.base.rglob("*")]:
                    os.chown(path, owner.pw_uid, owner.pw_gid)


async def _run(*command: str, env: dict[str, str] | None = None) -> None:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd="/",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {output.decode(errors='replace')[-500:]}")


def _in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
