"""A minimal HTTP endpoint for a service: `GET /metrics` (Prometheus), `GET /health` (the
supervisor's view, as before), `GET /health/live` (the process answers) and `GET /health/ready`
(whether it can work now: 200 or 503, with the reason of each check in the body).

Small enough not to need a web framework: one request per connection, GET only, bounded
request size and read time. A bad request gets a 4xx with a one-line reason and the service
keeps running.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from tidings.observe.metrics import CONTENT_TYPE

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT = 5.0

Scrape = Callable[[], Awaitable[str]]
Health = Callable[[], dict[str, object]]
Ready = Callable[[], Awaitable[dict[str, Any]]]
PATHS = ("/metrics", "/health", "/health/live", "/health/ready")


async def serve(scrape: Scrape, health: Health, host: str, port: int, *, ready: Ready | None = None) -> asyncio.Server:
    """Start serving on `host:port` (port 0 picks a free one); close the returned server to stop.
    Without `ready`, `/health/ready` answers as `/health` does."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, content_type, body = await _respond(reader, scrape, health, ready)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            )
            if status.startswith("405"):
                head += "Allow: GET\r\n"
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=MAX_REQUEST_BYTES)


async def _respond(
    reader: asyncio.StreamReader, scrape: Scrape, health: Health, ready: Ready | None
) -> tuple[str, str, bytes]:
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            head = await reader.readuntil(b"\r\n\r\n")
    except TimeoutError:
        return _text("408 Request Timeout", "the request was not complete within 5 seconds")
    except (asyncio.LimitOverrunError, ValueError):
        return _text("431 Request Header Fields Too Large", f"the request head exceeds {MAX_REQUEST_BYTES} bytes")
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _text("400 Bad Request", "expected a request line like 'GET /metrics HTTP/1.1'")
    method, target, _ = parts
    path = target.split("?", 1)[0]
    if path not in PATHS:
        return _text("404 Not Found", f"no {path!r} here; try {', '.join(PATHS)}")
    if method != "GET":
        return _text("405 Method Not Allowed", f"{path} answers GET only")
    if path == "/health/live":
        return "200 OK", "application/json", json.dumps({"status": "live"}).encode()
    if path == "/health/ready" and ready is not None:
        verdict = await ready()
        status = "200 OK" if verdict.get("status") == "ready" else "503 Service Unavailable"
        return status, "application/json", json.dumps(verdict).encode()
    if path.startswith("/health"):
        report = health()
        status = "200 OK" if report.get("status") == "up" else "503 Service Unavailable"
        return status, "application/json", json.dumps(report).encode()
    return "200 OK", CONTENT_TYPE, (await scrape()).encode()


def _text(status: str, reason: str) -> tuple[str, str, bytes]:
    return status, "text/plain; charset=utf-8", f"{reason}\n".encode()
