"""Configure a process's signals the OpenTelemetry way: from the environment, or from flags.

`configure(service_name, log_format=..., log_level=...)` is what `tidings run` and every shop
process call first; an application may call it too. Nothing is configured on import.

- **Traces**: an SDK `TracerProvider` with a batching OTLP/HTTP exporter when
  `OTEL_TRACES_EXPORTER` is `otlp` (or `console`), or, when that is unset, as soon as
  `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (ADR 0020 says why
  unset does not mean `otlp` here). `OTEL_SDK_DISABLED=true` turns it off. The exporter reads its
  own `OTEL_EXPORTER_OTLP_*` variables (endpoint, headers, timeout); the resource comes from
  `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`, with `service_name` as the default name.
- **Logs**: `human` (the default) or `json` (`TIDINGS_LOG_FORMAT`), see `tidings.observe.logs`.

`shutdown()` flushes the spans still buffered; `configure` also registers it with `atexit`.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from tidings.errors import ConfigurationError
from tidings.observe import tracing
from tidings.observe.logs import EVENTS, JsonFormatter

log = logging.getLogger("tidings.observe")

LOG_FORMATS = ("human", "json")
HUMAN = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
_provider: Any = None


def traces_exporter(environ: Mapping[str, str]) -> str:
    """Which span exporter the environment asks for: `otlp`, `console` or `none`."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "none"
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        if named not in ("otlp", "console", "none"):
            raise ConfigurationError(f"OTEL_TRACES_EXPORTER={named!r}: Tidings supports otlp, console or none")
        return named
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return "otlp" if any(environ.get(name) for name in endpoints) else "none"


def configure(
    service_name: str,
    *,
    log_format: str | None = None,
    log_level: str = "INFO",
    environ: Mapping[str, str] | None = None,
) -> str:
    """Set up logging and, if the environment asks, tracing; returns the span exporter in use."""
    environ = os.environ if environ is None else environ
    configure_logging(service_name, log_format or environ.get("TIDINGS_LOG_FORMAT") or "human", log_level)
    exporter = traces_exporter(environ)
    if exporter != "none":
        exporter = _configure_tracing(service_name, exporter, environ)
    return exporter


def configure_logging(service_name: str, log_format: str, log_level: str) -> None:
    """The root logger writes to stderr in `log_format`; JSON adds one line per settled delivery."""
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(f"log format {log_format!r}: use human or json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service_name) if log_format == "json" else logging.Formatter(HUMAN))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(log_level.upper())
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))  # its INFO is setup noise
    per_delivery = log_format == "json" or root.level <= logging.DEBUG
    EVENTS.setLevel(logging.INFO if per_delivery else logging.WARNING)


def _configure_tracing(service_name: str, exporter: str, environ: Mapping[str, str]) -> str:
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("tracing asked for (%s), but the SDK is missing: pip install 'tidings[otel]'", exporter)
        return "none"
    if exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTLP export asked for but its exporter is missing: pip install 'tidings[otel]'")
            return "none"
        span_exporter: Any = OTLPSpanExporter()
    else:
        span_exporter = ConsoleSpanExporter()
    defaults = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(defaults))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    global _provider
    if _provider is None:
        trace.set_tracer_provider(provider)  # instrumented libraries (HTTP servers) use it too
        atexit.register(shutdown)
    _provider = provider
    tracing.use_tracer_provider(provider)
    log.info("%s exports spans (%s)", service_name, exporter)
    return exporter


def shutdown() -> None:
    """Flush and stop the tracer provider `configure` set up, if any."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()
        tracing.use_tracer_provider(None)
