"""A service whose background task dies at once under `Stop(exit_code=71)`: for `tidings run`'s exit code."""

from __future__ import annotations

import os

from tidings.runtime.supervisor import Stop
from tidings.service import Service

service = Service("doomed", broker=os.environ.get("DOOMED_BROKER", "memory://doomed"))


async def _explode() -> None:
    raise RuntimeError("the sweep hit a bug")


service.background("sweep", _explode, on_crash=Stop(exit_code=71))
