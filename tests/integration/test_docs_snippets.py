"""The documentation's code runs: the getting-started example end to end, every Python block of
the README executed, and every Python block of the docs pages at least compiled (fragments with
`...` cannot run on their own; docs/examples/*.py hold the runnable ones, which pytest collects)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def blocks(path: Path) -> list[str]:
    return [block for block in BLOCK.findall(path.read_text()) if "--8<--" not in block]


async def test_the_getting_started_example_reserves_stock(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("first_service", ROOT / "docs" / "examples" / "first_service.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert await module.main(tmp_path) == 0


def test_the_upcasting_example_reads_version_1() -> None:
    spec = importlib.util.spec_from_file_location("upcasting", ROOT / "docs" / "examples" / "upcasting.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main() == module.PriceSet(sku="SKU-TEA", amount_cents=450)


def test_every_python_block_of_the_readme_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = blocks(ROOT / "README.md")
    assert found, "the README has Python examples"
    for block in found:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


@pytest.mark.parametrize("page", sorted((ROOT / "docs").rglob("*.md")), ids=lambda page: page.name)
def test_every_python_block_of_a_docs_page_compiles(page: Path) -> None:
    for block in blocks(page):
        compile(block, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_every_command_of_the_cli_is_in_its_reference_page() -> None:
    from tidings.cli import _parser

    page = (ROOT / "docs" / "reference" / "cli.md").read_text()
    subparsers = next(action for action in _parser()._actions if action.dest == "command")
    missing = [name for name in subparsers.choices if f"`tidings {name}" not in page]  # type: ignore[attr-defined]
    assert missing == []


def test_every_test_the_guarantees_page_names_exists() -> None:
    page = (ROOT / "docs" / "guarantees.md").read_text()
    references = re.findall(r"`((?:unit|integration|conformance|system)/[\w/]+\.py)(?:::(\w+))?`", page)
    assert len(references) > 20
    missing = []
    for path, name in references:
        source = ROOT / "tests" / path
        if not source.exists() or (name and not re.search(rf"def {name}\(", source.read_text())):
            missing.append(f"{path}::{name}" if name else path)
    assert missing == []
