"""Run the shop as a user does, from tests: `shop up`, `shop load`, `shop check` as processes.

`Shop` starts `python -m services up` with its settings in `SHOP_*` variables, waits for the
announcement, and stops it with SIGTERM (expecting exit status 0). On failure the services'
logs are printed, since the interesting part of a system test failure is in them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.settings import Settings
from services.supervisor import read_ready_file

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql://postgres:postgres@127.0.0.1:5432"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
MANAGEMENT = "http://127.0.0.1:15672/api"


def shop_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}


class Shop:
    """One `shop up` process; use as a context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        services: Sequence[str] | None = None,
        name: str = "shop",
        replicas: dict[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.output = settings.data_dir / f"{name}.out"
        args = [sys.executable, "-m", "services", "up"]
        if services is not None:
            args += ["--services", ",".join(services)]
        for service, count in (replicas or {}).items():
            args += ["--replicas", f"{service}={count}"]
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Shop:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                self.args, cwd=ROOT, env=shop_env(self.settings), stdout=output, stderr=subprocess.STDOUT
            )
        try:
            self.wait_for_output("shop is up", within=60)
        except BaseException:
            self.stop()  # a shop that never came up is not left running (nor its children, which it stops)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        status = self.stop()
        if exc_info[0] is None:
            assert status == 0, f"shop up exited with {status}\n{self.logs()}"
        else:
            print(self.logs())

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        except BaseException:  # the test interrupted: never leave the process behind
            self.process.kill()
            self.process.wait()
            raise

    @property
    def api(self) -> str:
        info = read_ready_file(self.settings, "orders")
        assert info is not None, "the orders service is not running"
        return str(info["api"])

    def pid(self, service: str) -> int:
        info = read_ready_file(self.settings, service)
        assert info is not None, f"{service} is not running"
        return int(info["pid"])

    def wait_for_output(self, text: str, *, within: float) -> None:
        deadline = time.monotonic() + within
        while text not in self.output.read_text(errors="replace"):
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"shop up never said {text!r}\n{self.logs()}")
            time.sleep(0.1)

    def wait_ready(self, service: str, *, not_pid: int | None = None, within: float = 60) -> int:
        """Wait until `service` is ready (with a pid other than `not_pid`); returns its pid."""
        deadline = time.monotonic() + within
        while True:
            info = read_ready_file(self.settings, service)
            if info is not None and info["pid"] != not_pid:
                return int(info["pid"])
            assert time.monotonic() < deadline, f"{service} not ready within {within}s\n{self.logs()}"
            time.sleep(0.1)

    def logs(self, tail: int = 40) -> str:
        parts = [f"--- {self.output.name}\n{self.output.read_text(errors='replace')}"]
        for log in sorted(self.settings.log_dir.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {log.name} (last {tail} lines)\n" + "\n".join(lines))
        return "\n".join(parts)


def shop_command(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m services <args>` to completion with the shop's settings."""
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        cwd=ROOT,
        env=shop_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load(settings: Settings, api: str, orders: int, rate: float, *, timeout: float = 120) -> dict[str, Any]:
    """`shop load`, returning its JSON figures; fails the test if it did not exit 0."""
    out = settings.data_dir / f"load-{time.monotonic_ns()}.json"
    args = ["load", "--api", api, "--orders", str(orders), "--rate", str(rate), "--out", str(out)]
    result = shop_command(settings, *args, "--settle-timeout", str(timeout), timeout=timeout + 60)
    assert result.returncode == 0, f"shop load failed:\n{result.stdout}\n{result.stderr}"
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def check(settings: Settings, *, wait: float = 30, business_only: bool = False) -> subprocess.CompletedProcess[str]:
    extra = ["--business-only"] if business_only else []
    return shop_command(settings, "check", "--wait", str(wait), *extra, timeout=wait + 60)


def assert_every_path(figures: dict[str, Any]) -> None:
    outcomes = figures["outcomes"]
    for outcome in ("confirmed", "cancelled:out-of-stock", "cancelled:payment-failed"):
        assert outcomes.get(outcome, 0) > 0, f"no {outcome} order in {outcomes}"
    assert figures["unsettled"] == 0, figures
    assert figures["refused"] == 0, figures
