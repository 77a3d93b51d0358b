"""`tidings new service` from a newcomer's seat: the generated package's own test passes as
generated, and `tidings run` starts it beside the shop on the embedded broker, where it handles
the shop's `shop.order.confirmed` events and its rows show it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.settings import Settings
from tests.system.harness import Shop, load

pytestmark = pytest.mark.slow
TIDINGS = str(Path(sys.executable).with_name("tidings"))


def test_a_scaffolded_service_passes_its_test_and_consumes_the_shops_events(tmp_path: Path) -> None:
    made = subprocess.run([TIDINGS, "new", "service", "loyalty"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "loyalty/tests"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout

    settings = Settings(data_dir=tmp_path / "data", api_port=0)
    settings.data_dir.mkdir()
    env = {
        **os.environ,
        "LOYALTY_BROKER": settings.broker_url(),
        "LOYALTY_DATABASE": f"sqlite:///{tmp_path}/loyalty.db",
    }
    with Shop(settings) as shop:
        loyalty = subprocess.Popen(
            [TIDINGS, "run", "loyalty.service:service"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_for_group(settings.data_dir / "broker.db", "loyalty", loyalty)
            figures = load(settings, shop.api, 20, rate=20)
            confirmed = figures["outcomes"].get("confirmed", 0)
            assert confirmed > 0, figures
            seen = _wait_for_rows(tmp_path / "loyalty.db", confirmed)
        finally:
            loyalty.terminate()
            output, _ = loyalty.communicate(timeout=30)
    assert loyalty.returncode == 0, output
    assert seen == confirmed


def _wait_for_group(broker: Path, group: str, process: subprocess.Popen[str], within: float = 30.0) -> None:
    """The group exists once the service subscribed: only then does the broker fan events out to it."""
    deadline = time.monotonic() + within
    while True:
        assert process.poll() is None, process.communicate()[0]
        with sqlite3.connect(broker) as connection:
            found = connection.execute("SELECT 1 FROM subscriptions WHERE grp = ? LIMIT 1", (group,)).fetchone()
        if found:
            return
        assert time.monotonic() < deadline, f"group {group!r} not declared within {within:g}s"
        time.sleep(0.1)


def _wait_for_rows(database: Path, count: int, within: float = 60.0) -> int:
    deadline = time.monotonic() + within
    while True:
        if database.exists():
            with sqlite3.connect(database) as connection:
                seen = connection.execute("SELECT count(*) FROM loyalty_seen").fetchone()[0]
            if seen >= count:
                return int(seen)
        assert time.monotonic() < deadline, f"loyalty saw fewer than {count} confirmed orders in {within:g}s"
        time.sleep(0.1)
