"""`tests/conftest.py` pins the `slow` tests to one pytest-xdist worker (`xdist_group("processes")`),
and that pinning must really happen under `--dist loadgroup`.

It failed silently once: pytest 9.2 builds node ids in a way pytest-xdist 3.8 cannot suffix with
the group, so grouped tests were spread over the workers like any other (pytest-xdist#1386), and
several whole shops ran at once. This runs a tiny suite through the real conftest hook on two
workers and checks where its `slow` tests ran.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = """
import pytest

@pytest.mark.slow
@pytest.mark.parametrize("n", range(6))
def test_slow(n):
    assert n >= 0

@pytest.mark.parametrize("n", range(6))
def test_fast(n):
    assert n >= 0
"""
CONFTEST = "from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n"
INI = "[pytest]\nmarkers =\n    slow: starts several processes\n"


def test_slow_tests_run_on_one_worker_under_loadgroup(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text(INI)
    command = [sys.executable, "-m", "pytest", "-p", "xdist", "-n", "2", "--dist", "loadgroup", "-v"]
    command += ["-p", "no:cacheprovider", "test_suite.py"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # xdist alone: quick
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    placed = re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED test_suite\.py::(test_\w+)\[\d\](\S*)", run.stdout)
    assert len(placed) == 12, run.stdout
    slow = [(worker, suffix) for worker, name, suffix in placed if name == "test_slow"]
    assert {suffix for _, suffix in slow} == {"@processes"}, "the slow tests were not put in a group"
    assert len({worker for worker, _ in slow}) == 1, f"the slow tests ran on several workers: {slow}"
