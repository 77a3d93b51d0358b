"""No fixed sleep stands in for a condition in the suite.

A sleep followed by an assertion is a race: too short on a busy machine (a flaky failure), too long
everywhere else (a slow suite). Wait for the condition with a deadline instead (`tests/waiting.py`,
the conformance harness's `until`, the test kit's `Harness.until`). Two shapes are refused, in every
module under `tests/`:

- a `sleep(...)` statement directly followed, in the same block, by an `assert`;
- a `sleep` of a fixed 0.1 s or more outside a polling loop.

A sleep that must stay says why on its own line with `# sleep-ok: <reason>` (a handler simulating
slow work, an outage whose length is the scenario, a bounded "nothing more arrives" window after a
positive check). That comment is the allow-list: it travels with the line it excuses.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ALLOW = "# sleep-ok:"
LONG = 0.1


def _sleep_seconds(statement: ast.stmt) -> float | None:
    """The constant seconds of a `sleep(...)`/`await ...sleep(...)` statement (0 when not constant);
    None when the statement is not a sleep."""
    if not isinstance(statement, ast.Expr):
        return None
    call = statement.value.value if isinstance(statement.value, ast.Await) else statement.value
    if not isinstance(call, ast.Call):
        return None
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    if name != "sleep":
        return None
    argument = call.args[0] if call.args else None
    if isinstance(argument, ast.Constant) and isinstance(argument.value, int | float):
        return float(argument.value)
    return 0.0


def _blocks(tree: ast.AST) -> Iterator[tuple[ast.AST, list[ast.stmt]]]:
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield node, block


def offences(path: Path) -> list[str]:
    """What in `path` breaks the rule, as `path:line: why` strings."""
    source = path.read_text()
    lines = source.splitlines()
    found: list[str] = []
    for parent, block in _blocks(ast.parse(source)):
        polling = isinstance(parent, ast.While | ast.For | ast.AsyncFor)
        for index, statement in enumerate(block):
            seconds = _sleep_seconds(statement)
            if seconds is None:
                continue
            line = lines[statement.lineno - 1]
            if ALLOW in line:
                assert line.split(ALLOW, 1)[1].strip(), f"{path}:{statement.lineno}: `{ALLOW}` needs a reason"
                continue
            following = block[index + 1] if index + 1 < len(block) else None
            where = f"{path}:{statement.lineno}"
            if isinstance(following, ast.Assert):
                found.append(f"{where}: a sleep followed by an assertion (wait for the condition instead)")
            elif seconds >= LONG and not polling:
                found.append(f"{where}: a fixed {seconds}s sleep (wait for a condition, or say why: {ALLOW})")
    return found


def test_no_sleep_stands_in_for_a_condition() -> None:
    found = [offence for path in sorted(TESTS.rglob("*.py")) for offence in offences(path)]
    assert not found, "\n".join(found)


def test_the_check_finds_both_shapes(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import asyncio, time\n"
        "async def test_a():\n"
        "    await asyncio.sleep(0.05)\n"
        "    assert True\n"
        "def test_b():\n"
        "    time.sleep(1)\n"
        "    while True:\n"
        "        time.sleep(0.5)\n"
        "        break\n"
        "    time.sleep(2)  # sleep-ok: the outage is the scenario\n"
    )
    found = offences(sample)
    assert [offence.split(": ", 1)[0] for offence in found] == [f"{sample}:3", f"{sample}:6"]
