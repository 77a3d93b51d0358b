"""Structured logs: one JSON object per line, and one line per settled delivery.

`JsonFormatter` writes each record as JSON with `time`, `level`, `logger`, `message`, the
process's `service`, the current span's `trace_id` and `span_id` (when tracing is on), and the
fields a record carries in `extra={"tidings": {...}}`. The settlement of every delivery is logged
on `EVENTS` (`tidings.events`) with `event_id`, `event_type`, `correlation_id`, `outcome`,
`attempt`, `duration_ms` and `group`, so an operator can follow one correlation id through the
logs of every service. With the human format those lines are DEBUG noise and stay off.

Ours, not a logging library's: forty lines on the standard `logging` module keep the core free
of a dependency, and the field names are the ones docs/observability.md documents.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from tidings.observe import tracing

INFO = logging.INFO
EVENTS = logging.getLogger("tidings.events")
"""One INFO record per settled delivery (see `delivery`)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record; `service` names the process in every line."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.service is not None:
            line["service"] = self.service
        fields = getattr(record, "tidings", None)
        if isinstance(fields, dict):
            line.update(fields)
        if "trace_id" not in line and (ids := tracing.current_ids()) is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def delivery(fields: dict[str, Any]) -> None:
    """Log one settled delivery on `EVENTS`, with the current span's ids (the process span)."""
    if not EVENTS.isEnabledFor(logging.INFO):
        return
    ids = tracing.current_ids()
    if ids is not None:
        fields["trace_id"], fields["span_id"] = ids
    what = (fields["outcome"], fields.get("event_type"), fields.get("event_id"))
    EVENTS.info("%s %s %s", *what, extra={"tidings": fields})
