"""Observability: OpenTelemetry spans for create/send/process, Prometheus metrics per service.

See docs/decisions/0008-tracing-and-metrics.md and docs/observability.md.
"""

from tidings.observe.metrics import ServiceMetrics
from tidings.observe.telemetry import Telemetry

__all__ = ["ServiceMetrics", "Telemetry"]
