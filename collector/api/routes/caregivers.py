"""Caregivers (생활지원사): who visits, and how many households each looks after."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from collector.api import crud
from collector.api.deps import PaginationDep, SessionDep
from collector.api.models import CaregiverCreate, CaregiverPublic, Page

router = APIRouter(prefix="/caregivers", tags=["caregivers"])


@router.get("")
def list_caregivers(
    session: SessionDep,
    page: PaginationDep,
    district: Annotated[str | None, Query(description="only this district")] = None,
) -> Page[CaregiverPublic]:
    items, count = crud.list_caregivers(
        session, district=district, limit=page.limit, offset=page.offset
    )
    loads = crud.household_counts(session, [c.id for c in items])
    data = [CaregiverPublic.of(c, loads[c.id]) for c in items]
    return Page[CaregiverPublic](data=data, count=count, limit=page.limit, offset=page.offset)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_caregiver(session: SessionDep, body: CaregiverCreate) -> CaregiverPublic:
    return CaregiverPublic.of(crud.create_caregiver(session, body), 0)
