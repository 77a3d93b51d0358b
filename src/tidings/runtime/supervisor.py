"""`Supervisor`: the one owner of a service's background tasks, and what happens when one dies.

    supervisor.start("relay", relay.run, on_crash=Restart(), on_stop=relay.request_stop)
    supervisor.start("consumer", consumer.run, on_crash=Stop(exit_code=70))
    supervisor.health()   # {"relay": "running", "consumer": "running", "saga-timeouts": "restarting (3)"}

A task is a coroutine function that runs until it is asked to stop. When it raises (or returns
without being asked to), its `on_crash` policy decides:

- `Restart(backoff)`: run it again after `backoff.delay(n)` for the n-th crash in a row; a run
  that lasted `healthy_after` seconds resets the count. Right for loops whose state lives in the
  database (relay, timeouts, retention): a fresh loop resumes where the dead one stopped.
- `Stop(exit_code)`: mark the supervisor failed; `wait_failed()` returns the
  `BackgroundTaskFailed`, which `Service.run()` raises after stopping cleanly, so the process
  exits non-zero and its process manager starts a fresh one. Nothing runs half-dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tidings.errors import TidingsError
from tidings.retry import RetryPolicy

log = logging.getLogger("tidings.supervisor")

RUNNING, STOPPED = "running", "stopped"


@dataclass(frozen=True, slots=True)
class Restart:
    """Restart a crashed task after a backoff delay (exponential, jittered, capped)."""

    backoff: RetryPolicy = field(default_factory=lambda: RetryPolicy(base=0.5, factor=2.0, max_delay=30.0))
    healthy_after: float = 60.0
    """A run that lasted this many seconds counts as healthy: the next crash is the first again."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the whole service when the task crashes; the process exits with `exit_code`."""

    exit_code: int = 70  # EX_SOFTWARE


CrashPolicy = Restart | Stop


class BackgroundTaskFailed(TidingsError):
    """A background task under a `Stop` policy died; the service stopped because of it."""

    def __init__(self, service: str, task: str, error: BaseException | None, exit_code: int) -> None:
        super().__init__(f"service {service!r}: background task {task!r} died ({_why(error)})")
        self.task = task
        self.exit_code = exit_code


@dataclass(slots=True)
class _Supervised:
    name: str
    run: Callable[[], Awaitable[None]]
    policy: CrashPolicy
    on_stop: Callable[[], None] | None
    state: str = RUNNING
    crashes: int = 0
    stopping: bool = False
    task: asyncio.Task[None] | None = None


class Supervisor:
    """Starts, watches, restarts and stops the background tasks of the service named `owner`."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: dict[str, _Supervised] = {}
        self._failed = asyncio.Event()
        self.failure: BackgroundTaskFailed | None = None
        """The first task failure under a `Stop` policy, once there is one."""

    def start(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        on_crash: CrashPolicy | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        """Run `run()` as the task `name` (`on_crash` defaults to `Stop()`).

        `on_stop`, when given, asks the task to finish on its own (after the batch in flight, say);
        `stop()` then waits for it before cancelling. Without it, stopping cancels the task.
        """
        if name in self._tasks and self._tasks[name].state != STOPPED:
            raise TidingsError(f"service {self.owner!r} already runs a background task named {name!r}")
        supervised = _Supervised(name, run, on_crash or Stop(), on_stop)
        supervised.task = asyncio.create_task(self._watch(supervised), name=f"{self.owner}-{name}-watch")
        self._tasks[name] = supervised

    def health(self) -> dict[str, str]:
        """Each task's state: `running`, `restarting (n)`, `stopped` or `failed: <why>`."""
        return {name: supervised.state for name, supervised in self._tasks.items()}

    def crashes(self) -> dict[str, int]:
        """Each task's crashes in a row (back to 0 once a run lasted its `healthy_after`)."""
        return {name: supervised.crashes for name, supervised in self._tasks.items()}

    @property
    def healthy(self) -> bool:
        return all(supervised.state == RUNNING for supervised in self._tasks.values())

    async def wait_failed(self) -> BackgroundTaskFailed:
        """Return once a task under a `Stop` policy has died."""
        await self._failed.wait()
        assert self.failure is not None
        return self.failure

    async def stop(self, name: str, *, grace: float = 30.0) -> None:
        """Stop one task: ask it (`on_stop`) and wait up to `grace` seconds, else cancel it."""
        supervised = self._tasks.get(name)
        if supervised is None or supervised.task is None:
            return
        supervised.stopping = True
        task, supervised.task = supervised.task, None
        if supervised.on_stop is not None and supervised.state == RUNNING:
            supervised.on_stop()
            await asyncio.wait({task}, timeout=grace)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not supervised.state.startswith("failed"):
            supervised.state = STOPPED

    async def stop_all(self, *, grace: float = 30.0) -> None:
        """Stop every task, newest first (what started last depends on what started before)."""
        for name in reversed(list(self._tasks)):
            await self.stop(name, grace=grace)

    async def _watch(self, supervised: _Supervised) -> None:
        while True:
            started = time.monotonic()
            error = await self._run_once(supervised)
            if supervised.stopping:
                return
            if time.monotonic() - started >= getattr(supervised.policy, "healthy_after", float("inf")):
                supervised.crashes = 0
            supervised.crashes += 1
            if isinstance(supervised.policy, Stop):
                self._fail(supervised, error, supervised.policy.exit_code)
                return
            delay = supervised.policy.backoff.delay(supervised.crashes)
            supervised.state = f"restarting ({supervised.crashes})"
            log.warning(
                "%s: background task %s died (%s); restarting in %.2fs",
                self.owner,
                supervised.name,
                _why(error),
                delay,
                exc_info=error,
            )
            await asyncio.sleep(delay)
            supervised.state = RUNNING

    async def _run_once(self, supervised: _Supervised) -> BaseException | None:
        """Run the task once in a task of its own; what it died of (None: it returned).

        Its own task, so that a task killed from outside (cancelled by anyone but this
        supervisor) counts as a crash, while cancelling the watcher stops it for good.
        """
        inner = asyncio.create_task(_call(supervised.run), name=f"{self.owner}-{supervised.name}")
        try:
            await inner
        except asyncio.CancelledError as cancelled:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                inner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await inner
                raise
            return cancelled
        except Exception as raised:
            return raised
        return None

    def _fail(self, supervised: _Supervised, error: BaseException | None, exit_code: int) -> None:
        failure = BackgroundTaskFailed(self.owner, supervised.name, error, exit_code)
        supervised.state = f"failed: {_why(error)}"
        log.error("%s; stopping the service", failure, exc_info=error)
        if self.failure is None:
            self.failure = failure
            self._failed.set()


async def _call(run: Callable[[], Awaitable[None]]) -> None:
    await run()


def _why(error: BaseException | None) -> str:
    if error is None:
        return "returned unexpectedly"
    if isinstance(error, asyncio.CancelledError):
        return "killed: its task was cancelled"
    return f"{type(error).__name__}: {error}"
