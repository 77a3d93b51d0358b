"""Tidings' spans follow OpenTelemetry's *global* provider too, set at any time: the cheap "no
provider yet" check (`tracing._GLOBAL_UNSET_IS_CHEAP`) must not hide one set later. The global
provider can be set once per process, so each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from tidings.observe import tracing

print(tracing._GLOBAL_UNSET_IS_CHEAP, tracing.recording())
trace.set_tracer_provider(TracerProvider())
print(tracing.recording())
"""


@pytest.mark.parametrize("from_environment", [False, True])
def test_a_global_provider_set_after_import_records_spans(from_environment: bool) -> None:
    env = dict(os.environ)
    env.pop("OTEL_PYTHON_TRACER_PROVIDER", None)
    if from_environment:  # a provider named by the environment: the public lookup is kept
        env["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.splitlines()
    if from_environment:
        assert before == "False True"  # the environment's provider is loaded on first use
    else:
        assert before == "True False"
    assert after == "True"
