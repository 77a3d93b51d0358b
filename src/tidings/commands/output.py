"""Print rows as a Rich table for people, or as JSON for scripts (`--json`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def emit(args: argparse.Namespace, rows: Sequence[Mapping[str, Any]], *, title: str, columns: Sequence[str]) -> None:
    """`rows` as JSON (one array) with `--json`, else as a table of `columns` titled `title`."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(list(rows), default=str, indent=2) + "\n")
        return
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    Console(width=160).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
