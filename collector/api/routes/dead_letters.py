"""Dead letters: MQTT messages the collector could not handle, kept with the reason."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from collector.api import crud
from collector.api.deps import DbDep, PaginationDep
from collector.api.models import DeadLetterPublic, Page
from collector.api.responses import json_page

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


@router.get("", response_model=Page[DeadLetterPublic])
async def list_dead_letters(request: Request, db: DbDep, page: PaginationDep) -> Response:
    """Newest first."""

    def work(session: Session) -> Response:
        listing = crud.list_dead_letters(
            session, limit=page.limit, offset=page.offset, cursor=page.cursor
        )
        data = [DeadLetterPublic.model_validate(d) for d in listing.items]
        return json_page(Page[DeadLetterPublic], data, listing, page)

    return await db.page(request, work, crud.DEAD_LETTER_TABLES)
