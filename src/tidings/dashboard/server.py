"""`tidings dashboard`: the recorder and the web page in one process, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from tidings.dashboard.config import DashboardConfig, Retention, load_token, trusted_hosts_from
from tidings.dashboard.recorder import Recorder
from tidings.errors import ConfigurationError

log = logging.getLogger("tidings.dashboard")


async def serve_dashboard(
    *,
    broker: str,
    database: str,
    events: str,
    host: str,
    port: int,
    trusted_hosts: str | None = None,
    max_age: float | None = None,
    max_bytes: int | None = None,
) -> None:
    """Record the event types of the module `events` and serve the dashboard on `host:port`.

    The admin token comes from `TIDINGS_DASHBOARD_TOKEN` or `TIDINGS_DASHBOARD_TOKEN_FILE`
    (read-only without one). SIGTERM and SIGINT stop the web server, then the recorder drains;
    the process exits 0.
    """
    try:
        import uvicorn

        from tidings.dashboard.wiring import Dashboard
    except ImportError:
        raise ConfigurationError("the dashboard needs its extra: pip install 'tidings[dashboard]'") from None

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            yield  # the signals are ours: uvicorn would re-raise them after shutting down

    defaults = Retention()
    retention = Retention(max_age=max_age or defaults.max_age, max_bytes=max_bytes or defaults.max_bytes)
    hosts = trusted_hosts_from(",".join(filter(None, [trusted_hosts, host])))
    config = DashboardConfig(token=load_token(), trusted_hosts=hosts, retention=retention)
    recorder = Recorder(broker=broker, database=database, events=events)
    dashboard = Dashboard(recorder, config=config)
    loop = asyncio.get_running_loop()
    await recorder.start()
    try:
        server = Server(uvicorn.Config(dashboard.app(), host=host, port=port, log_level="warning"))

        def stop() -> None:
            server.should_exit = True

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        mode = "read-only" if config.token is None else "admin token set"
        log.info(
            "dashboard on http://%s:%d recording %d event types (%s)", host, port, len(recorder.recorded_types), mode
        )
        await server.serve()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await recorder.stop()
