"""The dashboard's web side: one page (static files, no build step, no inline script) under a URL
per view, and the JSON API it reads. Needs `tidings[dashboard]`.

Every route sits behind `security.Guard` (trusted `Host`/`Origin`, security headers); replay and
purge also behind the admin token (`admin.py`). See docs/dashboard.md for the routes.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select

from tidings.dashboard import queries
from tidings.dashboard.admin import admin_routes
from tidings.dashboard.config import DashboardConfig
from tidings.dashboard.journey import journey
from tidings.dashboard.recorder import replays
from tidings.dashboard.retention import used_bytes
from tidings.dashboard.sagas import PHASES, SagaReader
from tidings.dashboard.sampler import Sampler
from tidings.dashboard.security import Guard
from tidings.store import Store
from tidings.transport.base import DeadLetter, Transport

PAGES: tuple[str, ...] = ("/", "/stream", "/charts", "/sagas", "/groups", "/groups/{name}")
PAGES += ("/orders/{key}", "/transactions/{key}", "/events/{key}")
"""Every view's URL answers the same page, which renders the view from `location.pathname`."""
Limit = Annotated[int, Query(ge=1, le=1000)]


def create_app(
    store: Store,
    transport: Transport,
    config: DashboardConfig | None = None,
    *,
    sampler: Sampler | None = None,
    sagas: SagaReader | None = None,
) -> Guard:
    """The app over the recorder's `store` and a `transport` to the same broker (an ASGI app)."""
    config = config or DashboardConfig()
    sagas = sagas or SagaReader(config.saga_databases)
    app = FastAPI(title="Tidings dashboard", docs_url="/api/docs", redoc_url=None)
    static = files("tidings.dashboard").joinpath("static")
    page = static.joinpath("index.html").read_text(encoding="utf-8")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    async def index() -> str:
        return page

    for path in PAGES:
        app.add_api_route(path, index, response_class=HTMLResponse, include_in_schema=False)

    @app.get("/api/config")
    async def settings() -> dict[str, Any]:
        used = await used_bytes(store)
        retention = config.retention
        return {"read_only": config.token is None, "used_bytes": used, "max_bytes": retention.max_bytes}

    @app.get("/api/events")
    async def recent_events(
        limit: Limit = 50,
        after: Annotated[int, Query(ge=0)] = 0,
        type: str | None = None,
        source: str | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[dict[str, Any]]:
        async with store.session() as session, session.begin():
            return await queries.recent(session, limit=limit, after=after, type_=type, source=source, text=q)

    @app.get("/api/events/{event_id}")
    async def one_event(event_id: str) -> dict[str, Any]:
        async with store.session() as session, session.begin():
            found = await queries.event(session, event_id)
        if found is None:
            raise HTTPException(404, f"no recorded event has id {event_id!r}")
        return {"event": found, "journey": await journey_of(found["correlation"]) if found["correlation"] else None}

    @app.get("/api/transactions")
    async def transaction_list(limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[dict[str, Any]]:
        async with store.session() as session, session.begin():
            return await queries.transactions(session, limit=limit)

    @app.get("/api/transactions/{correlation}")
    async def transaction(correlation: str) -> dict[str, Any]:
        async with store.session() as session, session.begin():
            found = await queries.transaction(session, correlation)
        if found is None:
            raise HTTPException(404, f"no recorded event has correlation id {correlation!r}")
        return found

    async def journey_of(correlation: str) -> dict[str, Any]:
        async with store.session() as session, session.begin():
            found = await queries.transaction(session, correlation)
            done = await session.execute(select(replays).where(replays.c.event_id.in_(_ids(found))))
            logged = [dict(row._mapping) for row in done]
        if found is None:
            raise HTTPException(404, f"no recorded event has correlation id {correlation!r}")
        ids = _ids(found)
        letters = [_letter(letter) for group in await transport.backlog() for letter in await _letters(group)]
        mine = [letter for letter in letters if letter["event_id"] in ids]
        for entry in logged:
            entry["group"] = entry.pop("group_name")
        saga_rows = await sagas.rows(correlation=correlation)
        return journey(correlation, found["events"], dead_letters=mine, replays=logged, sagas=saga_rows)

    async def _letters(group: str) -> list[DeadLetter]:
        return await transport.dead_letters(group, limit=1000)

    @app.get("/api/journeys/{correlation}")
    async def journey_route(correlation: str) -> dict[str, Any]:
        return await journey_of(correlation)

    @app.get("/api/orders/{subject}")
    async def order(subject: str) -> dict[str, Any]:
        """The journey of the business transaction the newest event about `subject` belongs to."""
        async with store.session() as session, session.begin():
            correlation = await queries.correlation_of_subject(session, subject)
        if correlation is None:
            raise HTTPException(404, f"no recorded event has subject {subject!r}")
        return await journey_of(correlation)

    @app.get("/api/search")
    async def search(q: Annotated[str, Query(min_length=1, max_length=200)]) -> dict[str, str]:
        groups = set(await transport.backlog())
        async with store.session() as session, session.begin():
            found = await queries.resolve(session, q, groups)
        if found is None:
            raise HTTPException(
                404, f"nothing recorded matches {q.strip()!r}: not an event, correlation, subject or group"
            )
        return found

    @app.get("/api/flow")
    async def flow() -> list[dict[str, Any]]:
        async with store.session() as session, session.begin():
            return await queries.flow(session)

    @app.get("/api/groups")
    async def groups() -> list[dict[str, Any]]:
        backlog = await transport.backlog()
        return [
            {"group": group, "backlog": count, "dead_letters": len(await _letters(group))}
            for group, count in sorted(backlog.items())
        ]

    @app.get("/api/dead-letters/{group}")
    async def dead_letters(group: str, limit: Limit = 100) -> list[dict[str, Any]]:
        return [_letter(letter) for letter in await transport.dead_letters(group, limit=limit)]

    app.include_router(admin_routes(store, transport, config.token))

    @app.get("/api/sagas")
    async def saga_list(phase: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
        if phase is not None and phase not in PHASES:
            raise HTTPException(422, f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
        rows = await sagas.rows(limit=limit if phase is None else 1000)
        counts = {name: sum(1 for row in rows if row["phase"] == name) for name in PHASES}
        chosen = [row for row in rows if phase is None or row["phase"] == phase][:limit]
        async with store.session() as session, session.begin():
            steps = await queries.latest_types(session, [row["correlation"] for row in chosen])
        for row in chosen:
            row["step"] = steps.get(row["correlation"])
        return {"sagas": chosen, "counts": counts, "services": list(config.saga_databases)}

    @app.get("/api/charts")
    async def charts(window: Annotated[float, Query(gt=0, le=3600)] = 120) -> dict[str, Any]:
        async with store.session() as session, session.begin():
            rates = await queries.rates(session, window=window)
        live = sampler.series() if sampler is not None else {"times": [], "health": {}}
        return {"rates": rates, "live": live}

    return Guard(app, config.trusted_hosts)


def _ids(found: dict[str, Any] | None) -> set[str]:
    return {event["id"] for event in found["events"]} if found else set()


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
