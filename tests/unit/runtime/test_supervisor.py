"""The supervisor's contract: restart with backoff, stop the service, report each task, stop cleanly."""

from __future__ import annotations

import asyncio

import pytest

from tidings.errors import TidingsError
from tidings.retry import RetryPolicy
from tidings.runtime.supervisor import BackgroundTaskFailed, Restart, Stop, Supervisor

QUICK = Restart(backoff=RetryPolicy(base=0.01, factor=2.0, max_delay=0.02, jitter=0.0))


async def until(condition: object, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_a_crashing_task_is_restarted_and_its_crashes_are_counted() -> None:
    supervisor = Supervisor("svc")
    runs = 0
    resumed = asyncio.Event()
    states: list[str] = []

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        states.append(supervisor.health()["flaky"])
        if runs <= 2:
            raise RuntimeError(f"crash {runs}")
        resumed.set()
        await asyncio.Event().wait()

    supervisor.start("flaky", flaky, on_crash=QUICK)
    await asyncio.wait_for(resumed.wait(), 5)
    assert runs == 3
    assert states == ["running", "running", "running"]  # each run starts as running again
    assert supervisor.health() == {"flaky": "running"}
    assert supervisor.healthy
    assert supervisor.failure is None
    await supervisor.stop_all()
    assert supervisor.health() == {"flaky": "stopped"}


async def test_health_says_restarting_while_the_backoff_runs() -> None:
    supervisor = Supervisor("svc")
    slow = Restart(backoff=RetryPolicy(base=30.0, max_delay=30.0, jitter=0.0))

    async def dies() -> None:
        raise ValueError("no")

    supervisor.start("dies", dies, on_crash=slow)
    await until(lambda: supervisor.health()["dies"] == "restarting (1)")
    assert not supervisor.healthy
    await supervisor.stop("dies")  # cancels the backoff sleep: stopping never waits for it
    assert supervisor.health()["dies"] == "stopped"


async def test_a_task_under_stop_fails_the_supervisor_with_its_exit_code() -> None:
    supervisor = Supervisor("svc")

    async def doomed() -> None:
        raise RuntimeError("boom")

    supervisor.start("doomed", doomed, on_crash=Stop(exit_code=71))
    failure = await asyncio.wait_for(supervisor.wait_failed(), 5)
    assert isinstance(failure, BackgroundTaskFailed)
    assert (failure.task, failure.exit_code) == ("doomed", 71)
    assert str(failure) == "service 'svc': background task 'doomed' died (RuntimeError: boom)"
    assert supervisor.health() == {"doomed": "failed: RuntimeError: boom"}
    await supervisor.stop_all()
    assert supervisor.health() == {"doomed": "failed: RuntimeError: boom"}  # stopping keeps why it failed


async def test_a_task_killed_from_outside_counts_as_a_crash() -> None:
    supervisor = Supervisor("svc")
    started = 0

    async def loop() -> None:
        nonlocal started
        started += 1
        await asyncio.Event().wait()

    supervisor.start("loop", loop, on_crash=QUICK)
    await until(lambda: started == 1)
    (inner,) = [task for task in asyncio.all_tasks() if task.get_name() == "svc-loop"]
    inner.cancel()
    await until(lambda: started == 2)
    assert supervisor.health() == {"loop": "running"}
    await supervisor.stop_all()


async def test_a_task_that_returns_on_its_own_is_a_crash_too() -> None:
    supervisor = Supervisor("svc")

    async def quits() -> None:
        return

    supervisor.start("quits", quits, on_crash=Stop())
    failure = await asyncio.wait_for(supervisor.wait_failed(), 5)
    assert "returned unexpectedly" in str(failure)
    assert failure.exit_code == 70


async def test_stop_asks_first_and_waits_for_the_task_to_finish() -> None:
    supervisor = Supervisor("svc")
    asked = asyncio.Event()
    finished: list[str] = []

    async def polite() -> None:
        await asked.wait()
        await asyncio.sleep(0.01)  # the batch in flight
        finished.append("flushed")

    supervisor.start("polite", polite, on_crash=QUICK, on_stop=asked.set)
    await supervisor.stop("polite", grace=5)
    assert finished == ["flushed"]
    assert supervisor.health() == {"polite": "stopped"}


async def test_stop_cancels_a_task_that_ignores_the_request_after_the_grace() -> None:
    supervisor = Supervisor("svc")
    cancelled = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    supervisor.start("stubborn", stubborn, on_stop=lambda: None)
    await asyncio.sleep(0)
    await supervisor.stop("stubborn", grace=0.05)
    assert cancelled.is_set()
    assert supervisor.failure is None  # being stopped is not a failure


async def test_a_name_runs_once_at_a_time() -> None:
    supervisor = Supervisor("svc")

    async def forever() -> None:
        await asyncio.Event().wait()

    supervisor.start("one", forever)
    with pytest.raises(TidingsError, match="already runs a background task named 'one'"):
        supervisor.start("one", forever)
    await supervisor.stop_all()
