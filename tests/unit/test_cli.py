"""The `tidings` command answers a wrong target or events module with one line and exit 2."""

from __future__ import annotations

import json

import pytest

from tidings.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no_such_module:service"], "cannot import 'no_such_module' for no_such_module:service"),
        (["run", "json"], "expected module:attribute, got 'json'"),
        (["asyncapi", "json:dumps"], "json:dumps is not a tidings.Service (got function)"),
        (
            ["dashboard", "--broker", "memory://cli", "--database", "sqlite://", "--events", "json"],
            "no event classes with a type found in <module 'json'",
        ),
    ],
)
def test_a_wrong_target_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"tidings: {message}")
    assert "Traceback" not in error


def test_asyncapi_writes_the_document_of_a_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["asyncapi", "tests.integration.sigterm_app:service", "--title", "One"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["info"]["title"] == "One"
    assert list(spec["operations"]) == ["slowpoke.receive.amqp", "slowpoke.receive.kafka"]
    assert list(spec["channels"]["amqp.queue.slowpoke"]["messages"]) == ["test.slow-job.v1"]
