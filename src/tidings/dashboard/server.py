"""`tidings dashboard`: the recorder and the web page in one process, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from tidings.dashboard.recorder import Recorder
from tidings.errors import ConfigurationError

log = logging.getLogger("tidings.dashboard")


async def serve_dashboard(*, broker: str, database: str, events: str, host: str, port: int) -> None:
    """Record the event types of the module `events` and serve the dashboard on `host:port`.

    SIGTERM and SIGINT stop the web server, then the recorder drains; the process exits 0.
    """
    try:
        import uvicorn

        from tidings.dashboard.app import create_app
    except ImportError:
        raise ConfigurationError("the dashboard needs FastAPI and uvicorn: pip install 'tidings[dashboard]'") from None

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            yield  # the signals are ours: uvicorn would re-raise them after shutting down

    recorder = Recorder(broker=broker, database=database, events=events)
    loop = asyncio.get_running_loop()
    await recorder.start()
    try:
        app = create_app(recorder.store, recorder.transport)
        server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

        def stop() -> None:
            server.should_exit = True

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop)
        log.info("dashboard on http://%s:%d recording %d event types", host, port, len(recorder.recorded_types))
        await server.serve()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await recorder.stop()
