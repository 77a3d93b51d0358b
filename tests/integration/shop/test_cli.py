"""`shop` refuses what it cannot do with exit status 2 and one line saying why."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import main


def test_check_without_databases_names_the_missing_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--data-dir", str(tmp_path), "--wait", "0"]) == 2
    assert "no orders database" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # checking never creates a database


def test_unknown_service_and_invalid_setting_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--services", "orders,billing"]) == 2
    assert "unknown service(s): billing" in capsys.readouterr().out
    assert main(["check", "--deadline", "0"]) == 2
    assert "must be positive" in capsys.readouterr().out
