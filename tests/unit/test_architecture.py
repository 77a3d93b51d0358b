"""The structure the architecture promises (docs/architecture.md): no import cycle anywhere in
`src/tidings`, and modules small enough to read whole. The layers themselves are checked by
import-linter (`lint-imports`, contracts in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[2] / "src" / "tidings"
MAX_LINES = 300


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative enough for ~100 modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if not imported.startswith("tidings"):
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module.startswith("tidings") and module not in index:
            visit(module)
    return found


def test_no_import_cycle_in_the_library() -> None:
    graph = grimp.build_graph("tidings")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("tidings.a", "tidings.b", "tidings.c"):
        graph.add_module(module)
    graph.add_import(importer="tidings.a", imported="tidings.b")
    graph.add_import(importer="tidings.b", imported="tidings.a")
    graph.add_import(importer="tidings.c", imported="tidings.a")
    assert _cycles(graph) == [["tidings.a", "tidings.b"]]


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    sizes = {str(path.relative_to(SRC)): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
