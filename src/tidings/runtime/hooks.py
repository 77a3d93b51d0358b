"""`Hooks`: what a service declares to run beside its handlers, run at the right moment of its life.

- startup hooks: `await hook(owner)` once the database is ready, before anything consumes;
- components: `factory(owner)` → an object with async `start()`/`stop()`, started once the
  service consumes and stopped, newest first, before it drains (an HTTP app in the same loop);
- shutdown hooks: after the drain, before the database closes;
- background tasks: started under the owner's supervisor once it consumes.

Generic in the owner's type, so the runtime never imports `tidings.service`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from tidings.runtime.supervisor import CrashPolicy

T = TypeVar("T")


class Component(Protocol):
    """Something that runs in the service's loop beside its handlers (an HTTP server)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Hooks(Generic[T]):
    """The declared hooks and components of one owner, and the components it started."""

    def __init__(self) -> None:
        self.startup: list[Callable[[T], Awaitable[None]]] = []
        self.shutdown: list[Callable[[T], Awaitable[None]]] = []
        self.components: list[Callable[[T], Component]] = []
        self.background: list[tuple[str, Callable[[], Awaitable[None]], CrashPolicy]] = []
        """User tasks (name, coroutine function, crash policy) for the owner's supervisor."""
        self._started: list[Component] = []

    async def run_startup(self, owner: T) -> None:
        for hook in self.startup:
            await hook(owner)

    async def start_components(self, owner: T) -> None:
        for factory in self.components:
            component = factory(owner)
            await component.start()
            self._started.append(component)

    async def stop_components(self) -> None:
        while self._started:
            await self._started.pop().stop()

    async def run_shutdown(self, owner: T) -> None:
        for hook in self.shutdown:
            await hook(owner)
