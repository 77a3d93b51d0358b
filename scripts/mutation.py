"""`make mutation`: run mutmut 3 over the guarantee modules ([tool.mutmut] in pyproject.toml) and
write the score per module and every surviving mutant, with its diff, into a Markdown report.

The generated part of the report sits between two markers; what is outside them (the review of
each survivor: why it survives or why it is equivalent) is kept when the report is written again.
Two mutants at a time by default (`--children`): the machine is shared, each mutant runs only the
tests that cover the mutated function (mutmut's per-function selection), and those talk to SQLite
or PostgreSQL and time retries. "No tests" and anything mutmut could not classify count as
surviving. Exit status 0 even with survivors: this is a report, not a gate.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = [sys.executable, "-m", "mutmut"]
BEGIN, END = "<!-- mutation:begin -->", "<!-- mutation:end -->"
KILLED = {1, 3, -24, 24, 36, 152, 255, -9}  # a failing test, or a timeout (the mutant hung the test: caught)
SURVIVED = {0}
NO_TESTS = {5, 33}
GOAL = 10  # per cent of a module's mutants that may survive, each with its reason in the review


def outcomes() -> dict[str, int | None]:
    """Each mutant's name -> the exit code of its test run, from mutmut's metadata files."""
    found: dict[str, int | None] = {}
    for meta in sorted((ROOT / "mutants").rglob("*.meta")):
        found.update(json.loads(meta.read_text()).get("exit_code_by_key", {}))
    return found


def module_of(mutant: str) -> str:
    """`tidings.retry.x_RetryPolicy__delay__mutmut_3` -> `tidings.retry`."""
    return mutant.split(".x", 1)[0].split(".x_", 1)[0]


def kind(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "not run" if code is None else f"exit {code}"


def show(mutant: str) -> str:
    """The lines the mutant changed: its function against the original, both read from the mutated
    copy under `mutants/` (as `mutmut show` does, without starting mutmut once per survivor)."""
    module, _, function = mutant.rpartition(".")
    functions = _functions(module)
    original = functions.get(function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig", "")
    mutated = functions.get(function, "")
    changed = difflib.unified_diff(original.splitlines(), mutated.splitlines(), lineterm="", n=0)
    return "\n".join(line for line in changed if line[:1] in "+-" and line[:3] not in ("+++", "---"))


@cache
def _functions(module: str) -> dict[str, str]:
    """Each function's source in the mutated copy of `module`."""
    path = ROOT / "mutants" / "src" / Path(*module.split(".")).with_suffix(".py")
    lines = path.read_text().splitlines()
    return {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.walk(ast.parse("\n".join(lines)))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def generated(found: dict[str, int | None]) -> str:
    per_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for mutant, code in found.items():
        per_module[module_of(mutant)][kind(code)] += 1
        if kind(code) not in ("killed", "not run"):
            survivors.append(mutant)
    rows = [
        "| module | mutants | killed | survived | no tests | not run | score (killed of those run) | surviving |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total: Counter[str] = Counter()
    for module, counts in sorted(per_module.items()):
        total.update(counts)
        rows.append(_row(module, counts))
    rows.append(_row("**all**", total))
    surviving = len(survivors) / max(1, sum(total.values()))
    verdict = "met" if surviving <= GOAL / 100 and not total["not run"] else "not met"
    parts = [
        "## Score per module",
        "",
        *rows,
        "",
        f"Surviving (survived, no tests or unclassified) of all mutants: {100 * surviving:.1f} %; "
        f"the goal, at most {GOAL} % with every mutant run, is {verdict}.",
        "",
        "## Surviving mutants",
        "",
    ]
    for mutant in sorted(survivors):
        parts += [f"### `{mutant}` ({kind(found[mutant])})", "", "```diff", show(mutant), "```", ""]
    if not survivors:
        parts.append("None.")
    return "\n".join(parts)


def _row(module: str, counts: Counter[str]) -> str:
    mutants = sum(counts.values())
    tested = mutants - counts["not run"]
    score = f"{100 * counts['killed'] / tested:.0f} %" if tested else "-"
    surviving = f"{100 * (tested - counts['killed']) / mutants:.1f} %" if mutants else "-"
    return (
        f"| {module} | {mutants} | {counts['killed']} | {counts['survived']} | {counts['no tests']} "
        f"| {counts['not run']} | {score} | {surviving} |"
    )


def write(report: Path, body: str) -> None:
    text = report.read_text() if report.exists() else f"# Mutation testing\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    report.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def run(command: list[str], wall_limit: float) -> None:
    """Run mutmut; stop any mutant whose tests run longer than `wall_limit` seconds of wall-clock
    time with SIGXCPU, which mutmut records as a timeout (caught). mutmut's own limit counts CPU
    seconds, and a mutant that makes a test wait (a relay that never publishes, a stop that waits
    out its grace) uses almost none: one such mutant held a worker for minutes."""
    with subprocess.Popen(command, cwd=ROOT) as mutmut:
        while mutmut.poll() is None:
            for pid, age in _mutants_running():
                if age > wall_limit:
                    os.kill(pid, signal.SIGXCPU)
            time.sleep(2)


def _mutants_running() -> list[tuple[int, float]]:
    """(pid, seconds running) of every process mutmut named after the mutant it tests (Linux)."""
    ticks, uptime = os.sysconf("SC_CLK_TCK"), float(Path("/proc/uptime").read_text().split()[0])
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(b"mutmut: "):
                started = int((entry / "stat").read_text().rpartition(")")[2].split()[19]) / ticks
                found.append((int(entry.name), uptime - started))
        except OSError:
            continue  # it ended meanwhile
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "mutation.md")
    parser.add_argument("--no-run", action="store_true", help="only write the report of the last run")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--wall-limit", type=float, default=120, help="seconds before a mutant counts as hung")
    parser.add_argument("mutants", nargs="*", help="test only these mutants again (names or globs)")
    args = parser.parse_args()
    if not args.no_run:
        run([*MUTMUT, "run", "--max-children", str(args.children), *args.mutants], args.wall_limit)
    found = outcomes()
    if not found:
        print("mutmut left no results under mutants/", file=sys.stderr)
        return 1
    write(args.report, generated(found))
    print(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
