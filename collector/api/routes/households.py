"""Households: residents living alone, their caregiver, devices and recent dispatches."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from sqlalchemy.orm import Session

from collector.api import crud
from collector.api.deps import DbDep, DistrictFilter, NowDep, PaginationDep
from collector.api.models import (
    CaregiverPublic,
    DevicePublic,
    DispatchPublic,
    HouseholdCreate,
    HouseholdDetail,
    HouseholdPublic,
    Page,
)
from collector.api.responses import CONFLICT, NOT_FOUND, json_page
from firmware_config.topics import ID_PATTERN

router = APIRouter(prefix="/households", tags=["households"])

HouseholdId = Annotated[str, Path(pattern=ID_PATTERN, description="the household's id, e.g. h0001")]


@router.get("", response_model=Page[HouseholdPublic])
async def list_households(
    request: Request, db: DbDep, page: PaginationDep, district: DistrictFilter = None
) -> Response:
    """Ordered by id."""

    def work(session: Session) -> Response:
        listing = crud.list_households(
            session, district=district, limit=page.limit, offset=page.offset, cursor=page.cursor
        )
        data = [HouseholdPublic.model_validate(h) for h in listing.items]
        return json_page(Page[HouseholdPublic], data, listing, page)

    return await db.page(request, work, crud.HOUSEHOLD_TABLES)


def _detail(session: Session, household_id: str) -> HouseholdDetail:
    household = crud.get_household(session, household_id)
    caregiver = household.caregiver
    load = crud.household_counts(session, [caregiver.id]) if caregiver else {}
    return HouseholdDetail.model_validate(
        HouseholdPublic.model_validate(household).model_dump()
        | {
            "caregiver": CaregiverPublic.of(caregiver, load[caregiver.id]) if caregiver else None,
            "devices": [DevicePublic.model_validate(d) for d in household.devices],
            "recent_dispatches": [
                DispatchPublic.model_validate(d)
                for d in crud.recent_dispatches(session, household_id)
            ],
        }
    )


@router.get("/{household_id}", responses=NOT_FOUND)
async def get_household(db: DbDep, household_id: HouseholdId) -> HouseholdDetail:
    return await db.run(lambda s: _detail(s, household_id))


@router.post("", status_code=status.HTTP_201_CREATED, responses=NOT_FOUND | CONFLICT)
async def create_household(db: DbDep, now: NowDep, body: HouseholdCreate) -> HouseholdPublic:
    return await db.run(
        lambda s: HouseholdPublic.model_validate(crud.create_household(s, body, now=now))
    )
