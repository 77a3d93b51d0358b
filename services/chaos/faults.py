"""The fault injector of the chaos run: a plan drawn from a seed, carried out in two lanes.

- The process lane SIGKILLs service processes one after the other (every service
  `kills_per_service` times, in a shuffled order) and, if the run has a private RabbitMQ node,
  restarts it once, around the middle. Each kill waits until the victim is ready (so it kills a
  working process) and then until the supervisor has a new one ready, before a pause.
- The network lane meanwhile cuts or slows the connections through one of the run's TCP proxies
  at random intervals, until the process lane is done. On the API proxy it also loses responses:
  slowed by 0.5 s per chunk for 1.5 s, so that requests reach the API and commit while their
  responses wait in the proxy, then cut: the client must retry an order that exists.

The plan (which victim, which proxy, how long) is the seed's; when the faults land relative to
the load depends on timing, so a seed reproduces the plan, not the exact interleaving.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

from services.chaos.proxy import TcpProxy
from services.chaos.rabbit import PrivateRabbit
from services.settings import SERVICES
from services.supervisor import Supervisor, read_ready_file

RECOVER_WITHIN = 120.0
SLOW_DELAYS = (0.05, 0.2, 0.5)


@dataclass
class Fault:
    kind: str  # kill, broker-restart, cut, slow, lose-responses
    target: str
    at_s: float
    """Seconds after the injector started."""
    recovered_s: float
    """Seconds until the target worked again (a new process ready, the broker up, the proxy fast)."""
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return {key: round(value, 2) if isinstance(value, float) else value for key, value in asdict(self).items()}


@dataclass(frozen=True)
class Plan:
    victims: tuple[str, ...]
    broker_restart_after: int | None
    """Index in `victims` after whose kill the broker is restarted (None: no private broker)."""
    pauses: tuple[float, ...]

    @classmethod
    def draw(
        cls, rng: random.Random, *, kills_per_service: int, broker: bool, pause: tuple[float, float], extra_kills: int
    ) -> Plan:
        victims = [name for name in SERVICES for _ in range(kills_per_service)]
        victims += rng.choices(SERVICES, k=extra_kills)
        rng.shuffle(victims)
        third = len(victims) // 3
        restart = rng.randint(third, max(third, 2 * third)) if broker else None
        return cls(tuple(victims), restart, tuple(rng.uniform(*pause) for _ in victims))


class Injector:
    def __init__(
        self,
        seed: int,
        supervisor: Supervisor,
        *,
        proxies: Mapping[str, TcpProxy],
        rabbit: PrivateRabbit | None = None,
        kills_per_service: int = 3,
        extra_kills: int = 1,
        pause: tuple[float, float] = (1.0, 3.0),
        network_every: tuple[float, float] = (3.0, 8.0),
        say: Callable[[str], None] = print,
    ) -> None:
        self.supervisor = supervisor
        self.settings = supervisor.settings
        self.proxies = proxies
        self.rabbit = rabbit
        self.say = say
        self.network_rng = random.Random(seed * 7919 + 1)
        self.network_every = network_every
        broker = rabbit is not None
        self.plan = Plan.draw(
            random.Random(seed),
            kills_per_service=kills_per_service,
            broker=broker,
            pause=pause,
            extra_kills=extra_kills,
        )
        self.faults: list[Fault] = []
        self.began = 0.0
        self.last_cleared = 0.0
        """`time.monotonic()` when the last fault was over (its target working again)."""

    async def run(self) -> list[Fault]:
        self.began = time.monotonic()
        done = asyncio.Event()
        network = asyncio.create_task(self._network_lane(done))
        try:
            await self._process_lane()
        finally:
            done.set()
            await network
        return self.faults

    # -- the process lane -------------------------------------------------------------------------

    async def _process_lane(self) -> None:
        for index, (victim, pause) in enumerate(zip(self.plan.victims, self.plan.pauses, strict=True)):
            await self._kill(victim)
            if index == self.plan.broker_restart_after and self.rabbit is not None:
                await self._restart_broker(self.rabbit)
            await asyncio.sleep(pause)

    async def _kill(self, victim: str) -> None:
        pid = await self._ready(victim)
        at = self._now()
        os.kill(pid, signal.SIGKILL)
        new = await self._ready(victim, not_pid=pid)
        self._record(Fault("kill", victim, at, self._now() - at, f"pid {pid} -> {new}"))

    async def _restart_broker(self, rabbit: PrivateRabbit) -> None:
        at = self._now()
        down = await rabbit.restart()
        for name in self.supervisor.children:  # the broker is back once every service works again
            await self._ready(name)
        self._record(Fault("broker-restart", rabbit.node, at, self._now() - at, f"server down {down:.1f}s"))

    async def _ready(self, name: str, *, not_pid: int | None = None) -> int:
        """The pid of `name` once the supervisor's current process of it is ready."""
        deadline = time.monotonic() + RECOVER_WITHIN
        while True:
            pid = self.supervisor.pid(name)
            info = read_ready_file(self.settings, name)
            if pid is not None and pid != not_pid and info is not None and info.get("pid") == pid:
                return pid
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} was not ready again within {RECOVER_WITHIN:g}s")
            await asyncio.sleep(0.1)

    # -- the network lane -------------------------------------------------------------------------

    async def _network_lane(self, done: asyncio.Event) -> None:
        rng = self.network_rng
        names: Sequence[str] = sorted(self.proxies)
        while names:
            try:
                await asyncio.wait_for(done.wait(), rng.uniform(*self.network_every))
                return
            except TimeoutError:
                pass
            name = rng.choice(names)
            proxy = self.proxies[name]
            at = self._now()
            draw = rng.random()
            if draw < 0.4:
                cut = proxy.cut()
                self._record(Fault("cut", name, at, 0.0, f"{cut} connection(s) reset"))
                continue
            if draw < 0.6 and name == "api":  # requests get through, their responses are held, then reset
                proxy.slow(0.5)
                await asyncio.sleep(1.5)
                cut = proxy.cut()
                proxy.fast()
                self._record(Fault("lose-responses", name, at, self._now() - at, f"{cut} connection(s) reset"))
                continue
            delay, length = rng.choice(SLOW_DELAYS), rng.uniform(2.0, 5.0)
            proxy.slow(delay)
            await asyncio.sleep(length)
            proxy.fast()
            self._record(Fault("slow", name, at, self._now() - at, f"+{delay * 1000:g} ms per chunk"))

    # -- bookkeeping ------------------------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic() - self.began

    def _record(self, fault: Fault) -> None:
        self.faults.append(fault)
        self.last_cleared = max(self.last_cleared, time.monotonic())
        self.say(
            f"{fault.at_s:7.1f}s {fault.kind:<14} {fault.target:<13} back in {fault.recovered_s:5.1f}s {fault.note}"
        )
