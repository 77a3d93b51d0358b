"""Owner names and the dead-holder check of the SQLite relay lease (no database)."""

from __future__ import annotations

import os
import subprocess
import sys

from tidings.store.lease import _gone, new_owner


def test_owner_names_are_unique_and_name_this_process() -> None:
    first, second = new_owner(), new_owner()
    assert first != second
    assert first.split(":")[1] == str(os.getpid())


def test_a_live_process_or_another_host_is_not_gone() -> None:
    assert not _gone(new_owner())  # this process
    assert not _gone(f"elsewhere.example:{os.getpid() + 1}:x")  # cannot check another host
    assert not _gone("garbage")


def test_an_exited_process_of_this_host_is_gone() -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    owner = new_owner().split(":")[0] + f":{int(child.stdout)}:x"
    assert _gone(owner)
