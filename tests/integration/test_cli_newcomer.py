"""What a newcomer met at the terminal, through the real console script in a subprocess: a module
beside them imports, a missing attribute is named, and a target that is not a service says what it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TIDINGS = str(Path(sys.executable).with_name("tidings"))


def run(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TIDINGS, *argv], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_run_imports_a_module_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "mymodule.py").write_text("inventory = 42\n")
    result = run(tmp_path, "run", "mymodule:inventory")
    assert result.returncode == 2
    assert result.stderr.strip() == "tidings: mymodule:inventory is not a tidings.Service (got int)"


def test_a_missing_attribute_is_named(tmp_path: Path) -> None:
    (tmp_path / "mymodule.py").write_text("inventory = 42\n")
    result = run(tmp_path, "run", "mymodule:nosuch")
    assert result.returncode == 2
    assert result.stderr.strip() == "tidings: module 'mymodule' has no attribute 'nosuch'"


def test_a_missing_data_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "mymodule.py").write_text(
        "from tidings.service import Service\n"
        "inventory = Service('inventory', broker='sqlite:///data/broker.db', database='sqlite:///data/inventory.db')\n"
    )
    result = run(tmp_path, "run", "mymodule:inventory")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "tidings: the folder 'data' of the SQLite broker does not exist: create it first"
    )
    (tmp_path / "data").mkdir()
    backlog = run(tmp_path, "outbox", "status", "--database", "sqlite:///nowhere/inventory.db")
    assert backlog.returncode == 2
    assert "the folder 'nowhere' of the SQLite database does not exist: create it first" in backlog.stderr
