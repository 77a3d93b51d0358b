"""The dashboard's web side: a JSON API over the recorded events and the broker's admin calls,
and one HTML page that polls it. Needs `tidings[dashboard]` (FastAPI)."""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from tidings.dashboard import queries
from tidings.store import Store
from tidings.transport.base import DeadLetter, Transport


class Replay(BaseModel):
    ids: list[str] | None = None
    """Dead letters to put back; None (or no body) replays all of the group's."""


def create_app(store: Store, transport: Transport) -> FastAPI:
    """The app over the recorder's `store` and a `transport` to the same broker."""
    app = FastAPI(title="Tidings dashboard", docs_url="/api/docs", redoc_url=None)
    page = files("tidings.dashboard").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return page

    @app.get("/api/events")
    async def recent_events(
        limit: Annotated[int, Query(ge=1, le=1000)] = 50, after: Annotated[int, Query(ge=0)] = 0
    ) -> list[dict[str, Any]]:
        async with store.session() as session, session.begin():
            return await queries.recent(session, limit=limit, after=after)

    @app.get("/api/transactions/{correlation}")
    async def transaction(correlation: str) -> dict[str, Any]:
        async with store.session() as session, session.begin():
            found = await queries.transaction(session, correlation)
        if found is None:
            raise HTTPException(404, f"no recorded event has correlation id {correlation!r}")
        return found

    @app.get("/api/flow")
    async def flow() -> list[dict[str, Any]]:
        async with store.session() as session, session.begin():
            return await queries.flow(session)

    @app.get("/api/groups")
    async def groups() -> list[dict[str, Any]]:
        backlog = await transport.backlog()
        return [{"group": group, "backlog": count} for group, count in sorted(backlog.items())]

    @app.get("/api/dead-letters/{group}")
    async def dead_letters(group: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        return [_letter(letter) for letter in await transport.dead_letters(group, limit=limit)]

    @app.post("/api/dead-letters/{group}/replay")
    async def replay(group: str, request: Annotated[Replay | None, Body()] = None) -> dict[str, int]:
        ids = request.ids if request is not None else None
        return {"replayed": await transport.replay(group, ids)}

    return app


def _letter(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "group": letter.group,
        "event_id": letter.event_id,
        "type": letter.type,
        "reason": letter.reason,
        "attempts": letter.attempts,
        "dead_lettered_at": letter.dead_lettered_at.isoformat() if letter.dead_lettered_at else None,
        "headers": dict(letter.headers),
        "body": letter.body.decode("utf-8", errors="replace"),
    }
