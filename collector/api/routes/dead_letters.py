"""Dead letters: MQTT messages the collector could not handle, kept with the reason."""

from __future__ import annotations

from fastapi import APIRouter

from collector.api import crud
from collector.api.deps import PaginationDep, SessionDep
from collector.api.models import DeadLetterPublic, Page

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


@router.get("")
def list_dead_letters(session: SessionDep, page: PaginationDep) -> Page[DeadLetterPublic]:
    """Newest first."""
    items, count = crud.list_dead_letters(session, limit=page.limit, offset=page.offset)
    data = [DeadLetterPublic.model_validate(d) for d in items]
    return Page[DeadLetterPublic](data=data, count=count, limit=page.limit, offset=page.offset)
