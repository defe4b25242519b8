"""The supervisor's desk: the district map with live updates, and the audit log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from collector.api.deps import NowDep, SessionDep, wall_clock
from collector.domain.livestate import changed
from collector.web import audit, records
from collector.web.access import Viewer, check, may_read_audit, may_see_map
from collector.web.deps import ViewerDep, render
from collector.web.snapshots import Built, SnapshotCache

router = APIRouter(include_in_schema=False)


@router.get("/map")
def map_page(request: Request, session: SessionDep, viewer: ViewerDep, now: NowDep) -> HTMLResponse:
    check(may_see_map(viewer), "the map is for supervisors")
    audit.record(session, viewer, "view_map", now=now, district=viewer.district)
    web = request.app.state.web
    config = {"tiles": web.tile_url, "attribution": web.tile_attribution, "lang": viewer.language}
    return render(request, "map.html", viewer=viewer, map_config=json.dumps(config))


def _cache(request: Request) -> SnapshotCache:
    web = request.app.state.web
    if web.map_cache is None:
        db = request.app.state.runtime.db

        def build(viewer: Viewer) -> Built:
            with db.session() as session:
                return records.map_built(session, viewer, now=wall_clock())

        web.map_cache = SnapshotCache(
            build, ttl_s=web.map_poll_s, watch=records.StoreMapWatch(db.session)
        )
    cache: SnapshotCache = web.map_cache
    return cache


@router.get("/map/data.json")
async def map_data(request: Request, viewer: ViewerDep) -> Response:
    """Every household of the viewer's scope; at most ``map_poll_s`` old. A client that sends
    the snapshot's ETag back (``If-None-Match``) is answered 304 while it is current. Still
    ``no-store``: the data names residents, and browsers are not to keep it on disk."""
    check(may_see_map(viewer), "the map is for supervisors")
    cache = _cache(request)
    # Served from the event loop: the bytes are ready; only the first build goes to a thread.
    snapshot = cache.current(viewer)
    if snapshot is None:
        snapshot = await run_in_threadpool(cache.get, viewer)
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding", "ETag": snapshot.etag}
    sent = request.headers.get("if-none-match", "")
    if snapshot.etag and snapshot.etag in (t.strip().removeprefix("W/") for t in sent.split(",")):
        return Response(status_code=304, headers=headers)
    if snapshot.gzipped and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(snapshot.gzipped, media_type="application/json", headers=headers)
    return Response(snapshot.body, media_type="application/json", headers=headers)


@router.get("/map/events")
async def map_events(request: Request, viewer: ViewerDep) -> StreamingResponse:
    """Server-sent events: ``households`` with every household whose colour or state changed.

    The store is the truth (several collectors may share it), so each stream reads the shared
    snapshot (rebuilt from the store at most every ``map_poll_s``) and sends only differences;
    the first event is the full list.
    """
    check(may_see_map(viewer), "the map is for supervisors")
    poll_s: float = request.app.state.web.map_poll_s

    async def stream() -> AsyncIterator[str]:
        last: dict[str, tuple[str, str]] = {}
        cache = _cache(request)
        yield "retry: 3000\n\n"
        while not await request.is_disconnected():
            homes = (await run_in_threadpool(cache.get, viewer)).homes
            now_state = {h["id"]: (h["risk"], h["state"]) for h in homes}
            ids = set(changed(last, now_state))
            if ids or not last:
                update = [h for h in homes if h["id"] in ids]
                yield f"event: households\ndata: {json.dumps(update, ensure_ascii=False)}\n\n"
            last = now_state
            await asyncio.sleep(poll_s)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/audit")
def audit_page(
    request: Request, session: SessionDep, viewer: ViewerDep, household: str | None = None
) -> HTMLResponse:
    check(may_read_audit(viewer), "the audit log is for supervisors")
    district = None if viewer.role.value == "admin" else viewer.district
    rows = audit.entries(session, district=district, household_id=household)
    return render(request, "audit.html", viewer=viewer, rows=rows)
