"""`make run` (`shop demo --fresh`) starts from empty databases and says so; without `--fresh` the
demo says that it reuses the earlier run's databases (so its totals include them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rich.console import Console

from services.cli import _start_clean
from services.settings import Settings


def test_fresh_deletes_the_earlier_databases_and_says_so(tmp_path: Path) -> None:
    for name in ("orders.db", "orders.db-wal", "broker.db"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("kept")
    console = Console(record=True, width=200)
    _start_clean(Settings(data_dir=tmp_path), console, fresh=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]
    assert "starting clean: deleted 3 database file(s)" in console.export_text()


def test_without_fresh_the_demo_says_it_reuses_the_databases(tmp_path: Path) -> None:
    (tmp_path / "orders.db").write_bytes(b"x")
    console = Console(record=True, width=200)
    _start_clean(Settings(data_dir=tmp_path), console, fresh=False)
    assert (tmp_path / "orders.db").exists()
    assert "reusing the databases" in console.export_text()


def test_make_run_asks_for_a_fresh_demo() -> None:
    makefile = (Path(__file__).resolve().parents[3] / "Makefile").read_text()
    assert "$(BIN)/shop demo --fresh" in makefile
    help_text = subprocess.run(
        [sys.executable, "-m", "services", "demo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--fresh" in help_text
