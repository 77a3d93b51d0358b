"""Replay and purge of dead letters, the dashboard's only writes: one, a selection, or all (said
explicitly), behind the admin token, each logged in `tidings_dashboard_replays`."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import insert

from tidings.dashboard.recorder import replays
from tidings.dashboard.security import require_admin
from tidings.store import Store
from tidings.transport.base import Transport


class Selection(BaseModel):
    """`{"ids": [...]}` (dead-letter ids) or `{"all": true}`; never both, never neither."""

    model_config = ConfigDict(extra="forbid")
    ids: list[str] | None = None
    all: bool = False

    @model_validator(mode="after")
    def one_of(self) -> Selection:
        if self.all == (self.ids is not None):
            raise ValueError('give either "ids": [...] or "all": true')
        if self.ids is not None and not self.ids:
            raise ValueError('"ids" is empty; to act on every dead letter send "all": true')
        return self


def admin_routes(store: Store, transport: Transport, token: str | None) -> APIRouter:
    router = APIRouter(prefix="/api/dead-letters", dependencies=[Depends(require_admin(token))])

    async def act(group: str, selection: Selection, action: Literal["replayed", "purged"]) -> int:
        letters = await transport.dead_letters(group, limit=100_000)
        chosen = [letter for letter in letters if selection.all or letter.id in set(selection.ids or ())]
        ids = None if selection.all else selection.ids
        count = await (transport.replay(group, ids) if action == "replayed" else transport.purge(group, ids))
        now = time.time()
        if chosen:
            async with store.session() as session, session.begin():
                await session.execute(
                    insert(replays),
                    [
                        {
                            "group_name": group,
                            "event_id": letter.event_id,
                            "reason": letter.reason,
                            "attempts": letter.attempts,
                            "action": action,
                            "at": now,
                        }
                        for letter in chosen
                    ],
                )
        return count

    @router.post("/{group}/replay")
    async def replay(group: str, selection: Selection) -> dict[str, int]:
        """Put the chosen dead letters back on the group's queue; `{"replayed": n}`."""
        return {"replayed": await act(group, selection, "replayed")}

    @router.post("/{group}/purge")
    async def purge(group: str, selection: Selection) -> dict[str, int]:
        """Delete the chosen dead letters for good; `{"purged": n}`."""
        return {"purged": await act(group, selection, "purged")}

    return router
