"""Caregivers (생활지원사): who visits, and how many households each looks after."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy.orm import Session

from collector.api import crud
from collector.api.deps import DbDep, DistrictFilter, PaginationDep
from collector.api.models import CaregiverCreate, CaregiverPublic, Page
from collector.api.responses import json_page

router = APIRouter(prefix="/caregivers", tags=["caregivers"])


@router.get("", response_model=Page[CaregiverPublic])
async def list_caregivers(
    request: Request, db: DbDep, page: PaginationDep, district: DistrictFilter = None
) -> Response:
    """In the order they were added."""

    def work(session: Session) -> Response:
        listing = crud.list_caregivers(
            session, district=district, limit=page.limit, offset=page.offset, cursor=page.cursor
        )
        loads = crud.household_counts(session, [c.id for c in listing.items])
        data = [CaregiverPublic.of(c, loads[c.id]) for c in listing.items]
        return json_page(Page[CaregiverPublic], data, listing, page)

    return await db.page(request, work, crud.CAREGIVER_TABLES)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_caregiver(db: DbDep, body: CaregiverCreate) -> CaregiverPublic:
    return await db.run(lambda s: CaregiverPublic.of(crud.create_caregiver(s, body), 0))
