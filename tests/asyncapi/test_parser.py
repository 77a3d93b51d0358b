"""The official AsyncAPI parser (`@asyncapi/parser`, Node) accepts the shop's document and one
generated here from other services on other names, with no error and no warning.

The parser is installed from `package.json` / `package-lock.json` in this directory with
`npm ci` the first time (`node_modules` stays out of git). Without Node the test skips
locally and fails when `TIDINGS_REQUIRE_SERVICES=1` (CI), like a missing broker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tidings.asyncapi import Brokers, document
from tidings.context import Context
from tidings.events import Event
from tidings.service import Service

HERE = Path(__file__).resolve().parent
SHOP = HERE.parents[1] / "docs" / "asyncapi" / "shop.json"


class Weighed(Event, type="test.parcel.weighed", version=3):
    """A parcel was weighed."""

    parcel: str
    grams: int
    fragile: bool = False


class Labelled(Event, type="test.parcel.labelled", version=1):
    parcel: str
    label: str


def generated() -> dict[str, object]:
    scales = Service("scales", broker="memory://asyncapi-parser")
    scales.publishes(Weighed)
    labels = Service("labels", broker="memory://asyncapi-parser")

    @labels.on(Weighed)
    async def label(event: Weighed, ctx: Context) -> None: ...

    labels.publishes(Labelled)
    brokers = Brokers(amqp_host="rabbit.internal:5672", vhost="parcels", namespace="depot", kafka_prefix="depot.")
    return document([scales, labels], title="Parcels", version="0.3.0", brokers=brokers)


def parser() -> Path:
    """`validate.mjs`, with its dependencies installed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        message = "Node.js and npm are needed for the AsyncAPI parser"
        if os.environ.get("TIDINGS_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if not (HERE / "node_modules" / "@asyncapi" / "parser").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True, timeout=300)
    return HERE / "validate.mjs"


def test_the_official_parser_accepts_the_documents_and_refuses_a_broken_one(tmp_path: Path) -> None:
    """One parser run (Node starts slowly): the shop's and a generated document pass with no
    diagnostic at all, not even a hint; a wrong Kafka binding fails the run."""
    mine = tmp_path / "parcels.json"
    mine.write_text(json.dumps(generated(), indent=2))
    broken = generated()
    channels = broken["channels"]
    assert isinstance(channels, dict)
    channels["kafka.events"]["bindings"]["kafka"]["partitions"] = "many"
    wrong = tmp_path / "broken.json"
    wrong.write_text(json.dumps(broken))
    command = ["node", str(parser()), str(SHOP), str(mine), str(wrong)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    for good in (SHOP, mine):
        said = [line for line in lines if line.startswith(f"{good}: ")]
        assert len(said) == 1, said
        assert said[0].startswith(f"{good}: valid, AsyncAPI 3.1.0"), said
    assert any(line.startswith(f"{wrong}: error:") and "partitions" in line for line in lines), done.stdout
    assert lines[-1].startswith(f"{wrong}: INVALID"), done.stdout
