"""The `tidings` commands for people at a terminal, one module each; `tidings.cli` registers them.

Each module has `register(commands)`, which adds its subparser with `handler=` set to a function
of the parsed arguments returning the exit status. Output is a readable table by default and
JSON with `--json`, for scripts. Argparse and Rich rather than Typer: the CLI already was
argparse, Rich is already a dependency, and the commands need nothing Typer adds
(docs/decisions/0016-cli-and-test-kit.md).
"""
